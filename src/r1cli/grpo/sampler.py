"""Rollouts without waste: a batched ancestral sampler for any transformers causal LM, with a KV cache.

`sample()` draws from the same distribution as `model.generate(do_sample=True, ...)` with temperature, top_k,
top_p and min_p (applied in that order, as transformers' logits warpers do), and differs in how it spends compute:

- each distinct prompt is prefilled once and its KV cache is copied to its G samples (GRPO repeats every prompt
  G times);
- a row that emits EOS leaves the batch at once (its cache rows are dropped), so the remaining steps run on the
  rows still generating; `generate()` keeps finished rows in the batch, padding them, until the last one ends;
- the log-probability of each sampled token under the temperature-scaled, *unfiltered* distribution
  (log_softmax(logits / T), the quantity the GRPO trainer scores) is returned with the tokens, so a trainer can
  reuse it as π_old instead of running a second forward pass.

The random stream is torch's global one (or `generator`), so results are reproducible under a seed but not
token-identical to `generate()`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _filter_logits(
    scores: torch.Tensor, top_k: int | None, top_p: float | None, min_p: float | None
) -> torch.Tensor:
    """[n, V] temperature-scaled logits -> the same with filtered-out tokens at -inf (top_k, then top_p, then min_p)."""
    if top_k is not None and 0 < top_k < scores.size(-1):
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, -torch.inf)
    if top_p is not None and top_p < 1.0:
        sorted_scores, sorted_idx = torch.sort(scores, descending=False, dim=-1)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cum <= (1 - top_p)
        remove_sorted[:, -1] = False  # always keep the most likely token
        remove = remove_sorted.scatter(1, sorted_idx, remove_sorted)
        scores = scores.masked_fill(remove, -torch.inf)
    if min_p is not None and min_p > 0.0:
        probs = scores.softmax(dim=-1)
        threshold = min_p * probs.amax(dim=-1, keepdim=True)
        scores = scores.masked_fill(probs < threshold, -torch.inf)
    return scores


def _left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def _cache_kwarg(model: torch.nn.Module) -> str:
    """transformers >= 5.24 names the KV-cache argument `cache` (`past_key_values` is deprecated there)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(type(base).forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """Sample one completion per row of `prompt_ids` (rows may repeat: each distinct prompt is prefilled once).

    Args:
        model: a causal LM accepting `input_ids, attention_mask, position_ids, past_key_values, use_cache,
            logits_to_keep` (every transformers decoder-only model, also behind PEFT).
        prompt_ids: N token-id lists (unpadded).
        max_new_tokens: length limit; a completion that reaches it without EOS is truncated.
        eos_token_ids: tokens that end a completion (kept as its last token).
        temperature: > 0.

    Returns:
        (completion_ids, logprobs): N lists, each completion ending with its EOS when it has one, and the
        log-probability of each of its tokens under log_softmax(logits / temperature).
    """
    from transformers import DynamicCache

    if temperature <= 0:
        raise ValueError(f"sample() needs temperature > 0, got {temperature}")
    n = len(prompt_ids)
    if n == 0:
        return [], []
    device = next(model.parameters()).device
    keys = [tuple(p) for p in prompt_ids]
    first: dict[tuple[int, ...], int] = {}
    row_to_unique = [first.setdefault(k, len(first)) for k in keys]
    unique = list(first)

    ids, mask = _left_pad(unique, pad_token_id, device)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=getattr(model, "config", None))  # filled in place by every forward
    cache_arg = _cache_kwarg(model)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids,
        use_cache=True,
        logits_to_keep=1,
        **{cache_arg: cache},
    )
    logits = out.logits[:, -1, :]
    next_pos = position_ids[:, -1] + 1
    if len(unique) != n or row_to_unique != list(range(n)):
        index = torch.as_tensor(row_to_unique, device=device)
        cache.batch_select_indices(index)
        logits, mask, next_pos = logits[index], mask[index], next_pos[index]

    eos = torch.as_tensor(list(eos_token_ids), device=device)
    tokens = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logps = torch.zeros((n, max_new_tokens), dtype=torch.float32, device=device)
    lengths = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)
    active = torch.arange(n, device=device)  # original row of each batch row still generating
    for t in range(max_new_tokens):
        scores = logits.float() / temperature
        logp_all = torch.log_softmax(scores, dim=-1)
        probs = _filter_logits(scores, top_k, top_p, min_p).softmax(dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        tokens[active, t] = nxt
        logps[active, t] = logp_all.gather(1, nxt[:, None]).squeeze(1)
        done = torch.isin(nxt, eos)
        if t == max_new_tokens - 1:
            lengths[active[done]] = t + 1
            break
        if bool(done.any()):
            lengths[active[done]] = t + 1
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            cache.batch_select_indices(keep)
            active, nxt, mask, next_pos = active[keep], nxt[keep], mask[keep], next_pos[keep]
        mask = torch.cat([mask, mask.new_ones((mask.size(0), 1))], dim=1)
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            use_cache=True,
            **{cache_arg: cache},
        )
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1

    lengths_l = lengths.tolist()
    tok_l, lp_l = tokens.tolist(), logps.tolist()
    return [tok_l[i][: lengths_l[i]] for i in range(n)], [lp_l[i][: lengths_l[i]] for i in range(n)]
