"""The scoring paths of `r1cli.grpo.scoring`."""

from __future__ import annotations

import contextlib
import hashlib

import pytest

torch = pytest.importorskip("torch")


class _NoAccelerator:
    def unwrap_model(self, model):
        return model

    def autocast(self):
        return contextlib.nullcontext()


def test_shared_prefix_gradient_is_bitwise_repeatable_on_two_threads():
    """Each prompt's KV cache is copied to its G completions; the backward sums the G gradients into it. Advanced
    indexing (`k[rows]`) summed them with a parallel accumulate whose order changed from call to call on 2 threads,
    so two identical GRPO runs drifted apart (1e-7 at step 3, a different distilled model at the end of the demo);
    `index_select` sums them in a fixed order."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from r1cli.grpo.scoring import ScoringOptions, shared_prefix_logps

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        cfg = Qwen2Config(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
        model = Qwen2ForCausalLM(cfg)
        G, U, P, C = 8, 8, 40, 100
        prompt_mask = torch.ones(U, P, dtype=torch.long)
        for u in range(U):
            prompt_mask[u, : 3 * u] = 0  # left padding of different widths
        comp_mask = torch.ones(U * G, C, dtype=torch.long)
        for r in range(U * G):
            comp_mask[r, 20 + (37 * r) % (C - 20):] = 0  # completions of many lengths: several buckets
        ids = torch.cat([torch.randint(0, 256, (U, P)).repeat_interleave(G, 0), torch.randint(0, 256, (U * G, C))], 1)
        mask = torch.cat([prompt_mask.repeat_interleave(G, 0), comp_mask], 1)

        def grad_hash() -> str:
            model.zero_grad()
            logps, _, _ = shared_prefix_logps(model, ids, mask, C, ScoringOptions(num_generations=G), _NoAccelerator())
            (-logps.sum()).backward()
            grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            return hashlib.sha256(grads.numpy().tobytes()).hexdigest()

        assert len({grad_hash() for _ in range(4)}) == 1
    finally:
        torch.set_num_threads(threads)
