"""Per-token log-probs of GRPO completions, faster than TRL's one padded forward and with the same numbers (up to
float rounding): the scoring paths behind `R1GRPOTrainer._get_per_token_logps_and_entropies`.

Notation: B rows (G completions per prompt, contiguous), the batch `[B, P+C]` = left-padded prompts of width P then
right-padded completions of width C (`logits_to_keep` = C), V the vocabulary. Every path returns
`([B, C] log-probs, [B, C] entropies or None, None)`: log_softmax(logits / T) at the completion tokens, zero at
padding, as TRL's fused head.

- `bucketed_logps`: TRL's own forward per length bucket (`plan_buckets`: rows sorted by prompt + completion
  length, padding trimmed per bucket).
- `shared_prefix_logps`: each distinct prompt runs through the model once and its completions, in buckets of
  similar completion length, attend to its KV cache; used when the [B, C, V] logits are small (`prefix_sharing_applies`).
- `sampler_old_logps`: when TRL is about to compute π_old by a forward right after sampling, the log-probs r1's
  sampler kept stand in for it (float32 weights only: in bf16 the cached and uncached forwards differ by more than
  rounding).

With several processes the gradient forward stays TRL's single call: several forward calls before one backward
would upset DDP's gradient sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from r1cli.grpo.trl_private import MULTIMODAL_KEYS

# TRL's scoring forward: (model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy) -> result
Forward = Callable[..., tuple]


@dataclass
class ScoringOptions:
    """r1cli's scoring switches (`RLConfig` fields of the same names) and the TRL values the paths need."""

    length_buckets: bool = True
    share_prompt_prefix: bool = True
    max_logits_bytes: int = 512 * 2**20  # `prefix_sharing_max_logits_mb`
    reuse_generation_logprobs: bool = True
    temperature: float = 1.0
    num_generations: int = 2
    cast_lm_head_to_fp32: bool = False


def plan_buckets(total_lengths: list[int], max_buckets: int = 8, min_rows: int = 4) -> list[list[int]]:
    """Split row indices into contiguous groups of the length-sorted order, so that padding to each group's longest
    row wastes little and the number of forward calls stays small.

    [B] lengths -> list of index lists (each sorted by length). Picks the number of equal-sized buckets k in 1..8
    minimising (padded tokens) × (1 + 0.05·k): a forward call costs roughly 5% of a full batch in fixed overhead."""
    order = sorted(range(len(total_lengths)), key=lambda i: total_lengths[i])
    n = len(order)
    best: tuple[float, list[list[int]]] | None = None
    for k in range(1, max_buckets + 1):
        if k > 1 and n // k < min_rows:
            break
        size = math.ceil(n / k)
        buckets = [order[j : j + size] for j in range(0, n, size)]
        padded = sum(len(b) * max(total_lengths[i] for i in b) for b in buckets)
        cost = padded * (1 + 0.05 * len(buckets))
        if best is None or cost < best[0]:
            best = (cost, buckets)
    assert best is not None
    return best[1]


def token_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    options: ScoringOptions,
    accelerator: Any,
    trl_forward: Forward,
    batch_size: int | None = None,
    compute_entropy: bool = False,
    compute_aux_loss: bool = False,
    **multimodal: Any,
) -> tuple:
    """[B, P+C] ids and mask -> ([B, C] log-probs, [B, C] entropies or None, aux loss or None) by the fastest path
    that applies; `trl_forward` (TRL's own) for multimodal inputs, the MoE aux loss, a gradient forward on several
    processes, a single row, or `length_buckets` off."""
    multimodal_in = any(v is not None for k, v in multimodal.items() if k in MULTIMODAL_KEYS)
    distributed_grad = torch.is_grad_enabled() and accelerator.num_processes > 1
    if not options.length_buckets or multimodal_in or compute_aux_loss or distributed_grad or input_ids.size(0) < 2:
        return trl_forward(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size,
            compute_entropy,
            compute_aux_loss,
            **multimodal,
        )
    if prefix_sharing_applies(model, input_ids, logits_to_keep, options, accelerator):
        return shared_prefix_logps(
            model, input_ids, attention_mask, logits_to_keep, options, accelerator, compute_entropy
        )
    return bucketed_logps(
        model, input_ids, attention_mask, logits_to_keep, trl_forward, batch_size, compute_entropy
    )


def prefix_sharing_applies(
    model: Any, input_ids: torch.Tensor, logits_to_keep: int, options: ScoringOptions, accelerator: Any
) -> bool:
    """The shared-prompt forward materialises [B, C, V] logits (TRL's fused head does not): only when they fit
    `max_logits_bytes`, without gradient checkpointing or a float32 LM-head cast, and when prompts repeat (G > 1)."""
    if not options.share_prompt_prefix or options.cast_lm_head_to_fp32 or options.num_generations < 2:
        return False
    unwrapped = accelerator.unwrap_model(model)
    if getattr(unwrapped, "is_gradient_checkpointing", False) and torch.is_grad_enabled():
        return False
    vocab = unwrapped.get_output_embeddings().weight.shape[0]
    return input_ids.size(0) * logits_to_keep * vocab * 4 <= options.max_logits_bytes


def bucketed_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    trl_forward: Forward,
    batch_size: int | None = None,
    compute_entropy: bool = False,
) -> tuple:
    """TRL's scoring forward per length bucket. [B, P+C] left-padded prompts + right-padded completions ->
    ([B, C] log-probs, [B, C] entropies or None, None); zero where a position is padding (as TRL's)."""
    B, L = input_ids.shape
    C = logits_to_keep
    P = L - C
    am = attention_mask.bool()
    prompt_part, comp_part = am[:, :P], am[:, P:]
    pos_p = torch.arange(P, device=am.device).expand(B, P)
    first = torch.where(prompt_part, pos_p, torch.full_like(pos_p, P)).amin(dim=1)
    prompt_len = (P - first).tolist()
    pos_c = torch.arange(C, device=am.device).expand(B, C)
    comp_len = (torch.where(comp_part, pos_c + 1, torch.zeros_like(pos_c)).amax(dim=1)).tolist()
    buckets = plan_buckets([p + c for p, c in zip(prompt_len, comp_len, strict=True)])
    if len(buckets) == 1 and max(prompt_len) == P and max(comp_len) == C:
        return trl_forward(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy)
    logps = None
    entropies = None
    for rows in buckets:
        idx = torch.as_tensor(rows, device=input_ids.device)
        pb = max(prompt_len[i] for i in rows)
        cb = max(1, max(comp_len[i] for i in rows))
        ids_b = input_ids[idx, P - pb : P + cb]
        mask_b = attention_mask[idx, P - pb : P + cb]
        lp, ent, _ = trl_forward(model, ids_b, mask_b, cb, batch_size, compute_entropy)
        if logps is None:
            logps = lp.new_zeros((B, C))
            entropies = lp.new_zeros((B, C)) if compute_entropy else None
        logps = logps.index_put((idx[:, None], torch.arange(cb, device=idx.device)[None, :]), lp)
        if compute_entropy:
            entropies = entropies.index_put((idx[:, None], torch.arange(cb, device=idx.device)[None, :]), ent)
    return logps, entropies, None


def shared_prefix_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    options: ScoringOptions,
    accelerator: Any,
    compute_entropy: bool = False,
) -> tuple:
    """Score completions with each distinct prompt run through the model once (GRPO repeats it G times).

    [B, P+C] left-padded prompts + right-padded completions -> ([B, C] log-probs, [B, C] entropies or None,
    None), log_softmax(logits / T) at the completion tokens, zero at padding (as TRL's fused head). The prompt
    pass keeps its KV cache (with gradient); each completion bucket (rows of similar completion length, padding
    trimmed) attends to its rows' copy of it, so the backward sums the G completions' gradients into the one
    prompt pass: the same gradient as G separate prompt passes, for 1/G of the prompt compute."""
    from transformers import DynamicCache

    from r1cli.generation import _cache_kwarg

    B, L = input_ids.shape
    C = logits_to_keep
    P = L - C
    prompt_ids, prompt_mask = input_ids[:, :P], attention_mask[:, :P]
    comp_ids, comp_mask = input_ids[:, P:], attention_mask[:, P:]
    keys: dict[tuple, int] = {}
    row_to_unique = [
        keys.setdefault((tuple(i), tuple(m)), len(keys))
        for i, m in zip(prompt_ids.tolist(), prompt_mask.tolist(), strict=True)
    ]
    uniq = torch.as_tensor([row_to_unique.index(u) for u in range(len(keys))], device=input_ids.device)
    pu = int(prompt_mask[uniq].sum(1).max())  # longest prompt: the columns to its left are padding everywhere
    u_ids, u_mask = prompt_ids[uniq, P - pu :], prompt_mask[uniq, P - pu :]
    u_pos = (u_mask.cumsum(-1) - 1).clamp(min=0)
    unwrapped = accelerator.unwrap_model(model)
    config = getattr(unwrapped, "config", None)
    cache_arg = _cache_kwarg(unwrapped)
    cache = DynamicCache(config=config)
    with accelerator.autocast():
        out = model(
            input_ids=u_ids,
            attention_mask=u_mask,
            position_ids=u_pos,
            use_cache=True,
            logits_to_keep=1,
            **{cache_arg: cache},
        )
    first_logits = out.logits[:, -1, :]  # [U, V]: predicts each completion's first token
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    row_map = torch.as_tensor(row_to_unique, device=input_ids.device)
    next_pos = u_pos[:, -1] + 1  # [U]

    pos_c = torch.arange(C, device=input_ids.device).expand(B, C)
    comp_len = torch.where(comp_mask.bool(), pos_c + 1, torch.zeros_like(pos_c)).amax(dim=1).tolist()
    logps = entropies = None
    for rows in plan_buckets(comp_len):
        idx = torch.as_tensor(rows, device=input_ids.device)
        cb = max(1, max(comp_len[i] for i in rows))
        u_of = row_map[idx]
        c_ids = comp_ids[idx, :cb]
        c_mask = torch.cat([u_mask[u_of], comp_mask[idx, :cb]], dim=1)
        c_pos = next_pos[u_of, None] + torch.arange(cb, device=idx.device)[None, :]
        # index_select, not k[u_of]: its backward sums the G copies' gradients in a fixed order; advanced
        # indexing's parallel accumulate did not (two identical runs drifted apart on 2 threads)
        bucket_cache = DynamicCache(config=config)
        for layer_idx, (k, v) in enumerate(kv):
            bucket_cache.update(k.index_select(0, u_of), v.index_select(0, u_of), layer_idx)
        with accelerator.autocast():
            out = model(
                input_ids=c_ids,
                attention_mask=c_mask,
                position_ids=c_pos,
                use_cache=True,
                **{cache_arg: bucket_cache},
            )
        logits = torch.cat([first_logits.index_select(0, u_of)[:, None, :], out.logits[:, : cb - 1, :]], dim=1).float()
        logits = logits / options.temperature
        logp_all = torch.log_softmax(logits, dim=-1)
        lp = logp_all.gather(-1, c_ids[..., None]).squeeze(-1)
        valid = comp_mask[idx, :cb].bool()
        lp = lp.masked_fill(~valid, 0.0)
        if logps is None:
            logps = lp.new_zeros((B, C))
            entropies = lp.new_zeros((B, C)) if compute_entropy else None
        cols = torch.arange(cb, device=idx.device)[None, :]
        logps = logps.index_put((idx[:, None], cols), lp)
        if compute_entropy:
            ent = -(logp_all.exp() * logp_all).sum(-1).masked_fill(~valid, 0.0)
            entropies = entropies.index_put((idx[:, None], cols), ent)
    return logps, entropies, None


def sampler_logps_stand_in(
    options: ScoringOptions, model: Any, *, trl_computes_old: bool, half_precision: bool, pad_to_multiple_of: Any
) -> bool:
    """Whether the sampler's log-probs can replace the π_old forward TRL is about to run: only when it does run
    (`trl_computes_old`), in float32 (bf16/fp16 cached and uncached forwards differ by more than rounding), and
    without `pad_to_multiple_of` (the batch would be wider than the sampled tokens)."""
    return (
        options.reuse_generation_logprobs
        and trl_computes_old
        and not half_precision
        and pad_to_multiple_of is None
        and all(p.dtype == torch.float32 for p in model.parameters())
    )


def sampler_old_logps(logprobs: list[list[float]], device: Any) -> torch.Tensor:
    """The sampler's per-token log-probs, one list per row -> [B, C] float32, right-padded with 0."""
    width = max((len(x) for x in logprobs), default=0)
    out = torch.zeros((len(logprobs), width), dtype=torch.float32)
    for i, row in enumerate(logprobs):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return out.to(device)


def is_old_logps_call(
    old: torch.Tensor, input_ids: torch.Tensor, logits_to_keep: int, *, compute_entropy: bool, compute_aux_loss: bool
) -> bool:
    """The scoring call `old` ([B, C] sampler log-probs) can answer: TRL's π_old forward right after sampling (no
    grad, no entropies or aux loss, the batch just sampled). The caller checks that the model is the policy."""
    return (
        not torch.is_grad_enabled()
        and not compute_entropy
        and not compute_aux_loss
        and tuple(old.shape) == (input_ids.size(0), logits_to_keep)
    )
