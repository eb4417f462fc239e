"""The one sampling engine: `r1 eval`, `r1 reject-sample`, `r1 distill`'s teacher, the judge, RL rollouts
(`R1GRPOTrainer._generate_single_turn`) and the tiny base's report all sample through `generate`.

`generate(model, tokenizer, prompts, n=k, ...)` takes prompts as token ids (or rendered text, encoded by
`r1cli.prompts.encode_prompt`) and returns, for every prompt, `n` `Sample`s: token ids, text, token count, finish
reason and, with `logprobs=True`, the log-probability of each sampled token under log_softmax(logits / T) (the
unfiltered, temperature-scaled distribution: the quantity the GRPO trainer scores, so a trainer can reuse it as
π_old or compare it with its own forward). The `hf` backend is a hand-written KV-cached decoding loop over one
`transformers` model (full weights, PEFT adapter or 4-bit: whatever `r1cli.models.load_model` returns), built for
throughput:

- **Continuous batching.** All `len(prompts) * n` rows are queued prompt-major; up to `batch_size` rows decode
  together. A finished row stops costing work: when a quarter of the slots are free (or every row finished), the
  batch is compacted (finished rows dropped from the KV cache) and refilled with queued rows, whose prompts are
  prefilled separately and merged in. Without refills the batch is still compacted once half of it is done.
- **Left padding, trimmed.** Rows of different lengths share one cache, left-padded; after each compaction the
  columns that are padding in every row are cut, so the cache never grows beyond the longest live row. The cache
  appends in place into a buffer with spare room (transformers' `DynamicCache` copies the whole cache per token).
- **Prefill sharing.** Identical prompts (the k samples of a prompt, and a prompt repeated in the list, as GRPO
  repeats each prompt G times) are prefilled once and their cache rows copied.
- **Lean decoding step.** For Llama- and Qwen2-architecture models (the tiny base, SmolLM2, Qwen2.5, the R1
  distills) a decoding step runs `_LeanDecode`: the model's own operations in the same order (bit-identical
  logits), without transformers' per-call machinery. Other models use their own forward.
- **Sampling.** Temperature, then the filters of transformers' logits warpers in their order (top-k, top-p,
  min-p; each keeps a prefix of the sorted distribution), then inverse-CDF sampling with one uniform per row and
  step drawn from a counter-based hash of (seed, prompt, occurrence, sample index, step). A sample therefore
  depends on the seed and its prompt, not on batch size, on the other prompts or on the order of finishing — a
  resumed eval regenerates nothing differently (up to float rounding of batched matmuls). `temperature=0` is
  greedy. The sort is partial (the top 32 candidates) except for rows whose kept prefix may reach past them.
- **Stops.** EOS ids (the tokenizer's and the generation config's, or `eos_ids`) end a row (the EOS is the last
  token id and counts in `n_tokens`, but is not part of the text); stop strings end it too (the text is cut
  before the stop string, as in vLLM); otherwise it ends at `max_new_tokens` (`finish_reason="length"`). Stop
  strings are checked only on rows whose new token can end one (its text contains a stop string's last
  character), so they cost no per-step Python work on the other rows.

`batch_size=None` picks the rows whose KV cache fits a fixed budget (4 GiB, at most 512 rows on CPU; half the
GPU's total memory, at most 4096 rows on CUDA): a function of the model, the longest prompt and `max_new_tokens`,
never of the memory that happens to be free (it changes with the page cache and other processes). Free memory is
only a safety cap: when half of it cannot hold that many rows, fewer rows decode at once, a warning says so and
`MEMORY_CAPS` keeps the event, which the run's manifest records (`runtime.generation_memory_caps`). Samples did not
depend on the batch size where measured (docs/design-notes.md), but a fixed default does not rely on that.

The `vllm` backend (optional extra, GPU only) hands the same request (token ids, n, temperature, top-k/p, min-p,
stops, log-probs) to `vllm.LLM.generate`; asking for it without vllm or without a GPU raises a `StageError` that
says so.

Departures from HF `generate`: no repetition penalty, beams or other logits processors (R1's protocol needs none);
finished rows leave the batch instead of decoding padding; EOS excluded from the text; seeded per sample rather
than per batch (a different random stream, the same distribution); top-k breaks ties at the k-th value by index
where transformers keeps them all; log-probs of the sampled tokens come with them.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from r1cli.errors import StageError

FinishReason = Literal["stop", "length"]
_M32 = 0xFFFFFFFF


@dataclass
class Sample:
    """One completion."""

    text: str = field(metadata={"help": "Decoded completion (special tokens skipped, cut before a stop string)."})
    n_tokens: int = field(metadata={"help": "Tokens the model generated, including a final EOS."})
    finish_reason: FinishReason = field(metadata={"help": "stop: EOS or a stop string; length: max_new_tokens."})
    token_ids: list[int] = field(default_factory=list, repr=False, metadata={"help": "Generated token ids."})
    logprobs: list[float] | None = field(default=None, repr=False, metadata={
        "help": "Per generated token (EOS included): log_softmax(logits / T) of the sampled token; with logprobs."})


@dataclass
class GenerationStats:
    """Totals of one `generate` call (also logged on stderr)."""

    completions: int = 0
    tokens: int = 0
    seconds: float = 0.0
    steps: int = 0
    prefills: int = 0
    max_rows: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


LAST_STATS = GenerationStats()


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    n: int = 1,
    temperature: float = 0.6,
    top_p: float = 0.95,
    top_k: int = 0,
    min_p: float = 0.0,
    max_new_tokens: int = 256,
    stop: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    backend: Literal["hf", "vllm"] = "hf",
    progress: bool = True,
    on_prompt_done: Callable[[int, list[Sample]], None] | None = None,
    share_prefill: bool = True,
    prefill_tokens: int = 16384,
    logprobs: bool = False,
    eos_ids: Sequence[int] | None = None,
    lean_decode: bool = True,
    vllm_options: dict[str, Any] | None = None,
) -> list[list[Sample]]:
    """Sample `n` completions for each prompt: token ids, or rendered text (encoded by `r1cli.prompts.encode_prompt`).

    Returns `out[i][j]`: sample j of prompt i. `on_prompt_done(i, samples)` is called as soon as all n samples of
    prompt i are finished (prompts finish roughly in order), e.g. to append them to a resumable log.
    `batch_size` = rows decoded at once (None: `default_batch_size`, fixed by the model and the request). `share_prefill` prefills identical
    prompts once for all their samples; `prefill_tokens` caps the padded prompt tokens of one prefill forward.
    `top_k` (0 = off) and `min_p` (0 = off) filter as transformers' warpers do. `logprobs` fills
    `Sample.logprobs`. `eos_ids` replaces the EOS ids read from the tokenizer and generation config. `lean_decode`
    runs decoding steps of Llama/Qwen2-architecture models through `_LeanDecode` (False: the model's own forward
    for every step). `model` is a loaded
    HF model for the `hf` backend (put in eval mode for the call, then restored); for `vllm` a model path/hub id,
    a PEFT adapter folder (merged first) or a `vllm.LLM`, with `vllm_options` {dtype, gpu_memory_utilization}.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0 <= min_p < 1:
        raise ValueError(f"min_p must be in [0, 1) (0 = off), got {min_p}")
    stop = [s for s in (stop or []) if s]
    if backend == "vllm":
        if not prompts:
            return []
        return _generate_vllm(model, tokenizer, prompts, n, temperature, top_p, top_k, min_p, max_new_tokens, stop,
                              seed, on_prompt_done, logprobs, eos_ids, **(vllm_options or {}))
    if backend != "hf":
        raise ValueError(f"unknown backend {backend!r}: use hf or vllm")
    if not prompts:
        return []
    engine = _HFEngine(model, tokenizer, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                       max_new_tokens=max_new_tokens, stop=stop, seed=seed, share_prefill=share_prefill,
                       prefill_tokens=prefill_tokens, logprobs=logprobs, eos_ids=eos_ids, lean_decode=lean_decode)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        return engine.run(list(prompts), n, batch_size, progress, on_prompt_done)
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------- random numbers


def _mix32(x: Any) -> Any:
    """lowbias32 integer hash (C. Wellons) on an int64 tensor of values in [0, 2^32); products stay < 2^63."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    # x * 0x846CA68B could overflow int64: multiply by the two 16-bit halves of the constant
    x = ((x * 0xA68B) + (((x * 0x846C) & 0xFFFF) << 16)) & _M32
    x = x ^ (x >> 16)
    return x


def row_uniforms(keys: Any, steps: Any) -> Any:
    """Uniforms in [0, 1) (float64, 53 random bits), one per row: a pure function of the row's 32-bit key and
    its step. keys, steps: int64 [B] -> [B]."""
    import torch

    a = _mix32((keys ^ ((steps * 0x9E3779B1) & _M32)) & _M32)
    b = _mix32(a ^ 0x85EBCA6B)
    return (a.to(torch.float64) * 2.0**21 + (b >> 11).to(torch.float64)) / 2.0**53


def row_key(seed: int, prompt: str, occurrence: int, sample: int) -> int:
    """32-bit key of one requested sample: (seed, prompt text, nth repeat of that prompt in the call, sample)."""
    h = hashlib.blake2b(f"{seed}\x00{occurrence}\x00{sample}\x00".encode() + prompt.encode(), digest_size=4)
    return int.from_bytes(h.digest(), "little")


def sample_tokens(logits: Any, u: Any, temperature: float, top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0,
                  top_k0: int = 32) -> Any:
    """Draw one token per row. logits: [B, V]; u: [B] uniforms in [0, 1) -> token ids [B] (int64).

    temperature 0 = argmax. The filters are transformers' logits warpers, in their order: top-k keeps the k most
    likely tokens; top-p then keeps the sorted tokens whose preceding cumulative mass (of the top-k set) is <
    top_p (so at least one); min-p then keeps the tokens with probability >= min_p x the largest. Each keeps a
    prefix of the sorted distribution, so the draw is the inverse CDF at u of the kept, renormalised prefix. A full
    sort of [B, V] is slow on CPU, so the candidates are the top_k (or `top_k0`) most likely tokens (a partial
    sort), and only rows whose kept prefix may reach past the candidates fall back to a full sort: the result is
    exact (up to ties at the k-th value, which top-k here breaks by index where transformers keeps them all).
    """
    import torch

    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    V = probs.shape[1]
    top_k = top_k if 0 < top_k < V else 0
    if top_p >= 1.0 and min_p <= 0.0 and not top_k:
        return _inverse_cdf(probs, None, u)
    K = top_k or min(top_k0, V)
    if K >= V:
        vals, order = probs.sort(dim=-1, descending=True)
        return _inverse_cdf(_keep(vals, top_p, min_p, None), order, u)
    vals, order = probs.topk(K, dim=-1)
    tok = _inverse_cdf(_keep(vals, top_p, min_p, vals.sum(-1, keepdim=True) if top_k else None), order, u)
    if top_k:
        return tok
    # a filter that is off keeps everything; top-p's prefix goes past the candidates when they hold < top_p of the
    # mass, min-p's when the last candidate is still above its threshold
    short = vals.sum(-1) < top_p if top_p < 1.0 else torch.ones_like(vals[:, 0], dtype=torch.bool)
    if min_p > 0.0:
        short &= vals[:, -1] >= min_p * vals[:, 0]
    if bool(short.any()):
        rows = short.nonzero().flatten()
        v2, o2 = probs.index_select(0, rows).sort(dim=-1, descending=True)
        tok[rows] = _inverse_cdf(_keep(v2, top_p, min_p, None), o2, u.index_select(0, rows))
    return tok


def token_logprobs(logits: Any, tokens: Any, temperature: float) -> Any:
    """log_softmax(logits / T) at `tokens`: the log-probability under the temperature-scaled, *unfiltered*
    distribution (what the GRPO trainer scores). logits: [B, V]; tokens: [B] -> [B] float32. At temperature 0
    (greedy: a point mass on the argmax) it is 0."""
    import torch

    if temperature == 0:
        return torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device)
    lp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return lp.gather(1, tokens.unsqueeze(1)).squeeze(1)


def _keep(sorted_probs: Any, top_p: float, min_p: float, total: Any) -> Any:
    """Zero the sorted (descending) probabilities outside the top-p nucleus (mass before them >= top_p x `total`,
    the mass of the top-k set; None = 1) and below min_p x the largest. [B, K] -> [B, K]."""
    if top_p < 1.0:
        before = sorted_probs.cumsum(-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(before >= (top_p if total is None else top_p * total), 0.0)
    if min_p > 0.0:
        sorted_probs = sorted_probs.masked_fill(sorted_probs < min_p * sorted_probs[:, :1], 0.0)
    return sorted_probs


def _inverse_cdf(probs: Any, order: Any, u: Any) -> Any:
    """Index j with cdf[j-1] <= u * total < cdf[j] (mapped through `order` if given). probs: [B, K] -> [B]."""
    import torch

    cdf = probs.cumsum(-1)
    r = (u.to(cdf.device, torch.float64) * cdf[:, -1].double()).to(cdf.dtype).unsqueeze(1)
    idx = torch.searchsorted(cdf, r, right=True)
    # float rounding at the top can land past the last token with mass: step back to it
    idx = torch.minimum(idx, (probs > 0).sum(-1, keepdim=True) - 1) if order is not None else idx.clamp_(
        max=cdf.shape[1] - 1)
    return (order.gather(1, idx) if order is not None else idx).squeeze(1)


# ---------------------------------------------------------------------------------------------- hf engine


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids from the tokenizer and the model's generation config (which may list several)."""
    ids: set[int] = set()
    for src in (getattr(tokenizer, "eos_token_id", None), getattr(getattr(model, "generation_config", None),
                                                                   "eos_token_id", None)):
        if src is None:
            continue
        ids.update([int(src)] if isinstance(src, int) else [int(x) for x in src])
    return sorted(ids)


_STOP_CANDIDATES: dict[tuple[int, int, tuple[str, ...]], Any] = {}


def _stop_candidate_ids(tokenizer: Any, stop: tuple[str, ...]) -> list[int] | None:
    """Token ids whose decoded text contains the last character of a stop string (cached per tokenizer);
    None when every token must be checked (a stop string ending in a non-ASCII character)."""
    lasts = {s[-1] for s in stop}
    if any(ord(c) > 127 for c in lasts):
        return None
    key = (id(tokenizer), len(tokenizer), stop)
    got = _STOP_CANDIDATES.get(key)
    if got is None:
        vocab = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(vocab)], skip_special_tokens=False)
        got = [i for i, t in enumerate(texts) if any(c in t for c in lasts)]
        _STOP_CANDIDATES[key] = got
    return got


def _accepts(model: Any, name: str) -> bool:
    """Whether the (PEFT-unwrapped) model's forward takes argument `name`."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return name in inspect.signature(type(inner).forward).parameters
    except (TypeError, ValueError):
        return False


def _cache_kwarg(model: Any) -> str:
    """transformers >= 5.24 names the cache argument `cache` (`past_key_values` is deprecated)."""
    return "cache" if _accepts(model, "cache") else "past_key_values"


# the default batch (see the module docstring): a fixed KV-cache budget and row cap per device type
CPU_KV_BUDGET = 4 << 30
MAX_ROWS = {"cpu": 512, "cuda": 4096}
# defaults this process cut to fit free memory: {rows, used, free_bytes (first time), calls}; `r1cli.runs.folder.runtime_facts` reads it
MEMORY_CAPS: list[dict[str, int]] = []


def kv_bytes_per_row(model: Any, max_len: int) -> int:
    """Estimated memory of one decoding row holding `max_len` tokens: keys and values, plus ~50% for the copies made
    while compacting/merging and per-row activations."""
    import torch

    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    layers = getattr(cfg, "num_hidden_layers", 12)
    heads = getattr(cfg, "num_attention_heads", 12)
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    param = next(model.parameters())
    elem = 4 if param.dtype == torch.float32 else 2
    return 3 * layers * kv * head_dim * max(max_len, 1) * elem


def default_batch_size(model: Any, max_len: int) -> int:
    """Rows decoded at once when `batch_size` is None (see the module docstring): the rows whose KV cache of
    `max_len` tokens fits the device's fixed budget, cut (with a warning, kept in `MEMORY_CAPS`) only when half the
    free memory cannot hold them."""
    import torch

    per_row = kv_bytes_per_row(model, max_len)
    device = next(model.parameters()).device
    if device.type == "cuda":
        budget, cap = torch.cuda.get_device_properties(device).total_memory // 2, MAX_ROWS["cuda"]
        free = torch.cuda.mem_get_info(device)[0]
    else:
        budget, cap = CPU_KV_BUDGET, MAX_ROWS["cpu"]
        free = _available_ram()
    rows = int(max(1, min(cap, budget // per_row)))
    fit = int(max(1, (free // 2) // per_row))
    if fit < rows:
        seen = next((e for e in MEMORY_CAPS if e["rows"] == rows and e["used"] == fit), None)
        if seen is None:
            from r1cli.console import log

            log(f"[yellow]warning[/]: only {free / 2**30:.1f} GiB free: decoding {fit} rows at once instead of "
                f"{rows} (recorded in the manifest; samples may round differently; set batch_size to pin it)")
            MEMORY_CAPS.append({"rows": rows, "used": fit, "free_bytes": int(free), "calls": 1})
        else:
            seen["calls"] += 1
        rows = fit
    return rows


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


class _Batch:
    """The rows decoding together. Tensors are [B, ...]; `cache` holds [B, kv_heads, L, head_dim] per layer."""

    __slots__ = ("cache", "mask", "pos", "last", "out", "lp", "n_gen", "alive", "keys", "rows")

    def __init__(self, cache, mask, pos, last, out, lp, n_gen, alive, keys, rows):
        self.cache = cache  # DynamicCache
        self.mask = mask  # [B, L] int64, 1 = real token
        self.pos = pos  # [B] position id of the token in `last`
        self.last = last  # [B] token to feed next
        self.out = out  # [B, max_new] generated ids (pad-filled)
        self.lp = lp  # [B, max_new] float32 log-probs of the generated ids, or None (not requested)
        self.n_gen = n_gen  # [B] generated so far
        self.alive = alive  # [B] bool
        self.keys = keys  # [B] int64 sample keys (32-bit)
        self.rows = rows  # list[(prompt index, sample index)]

    def __len__(self) -> int:
        return len(self.rows)


_CACHE_CLS: Any = None


def _new_cache() -> Any:
    """A DynamicCache whose layers append in place into a buffer with spare capacity.

    transformers' DynamicLayer appends a token with `torch.cat` over the whole cache (O(L) copy per step, the
    largest single cost of a decoding step measured on the tiny model); `_GrowLayer` copies one column and
    re-allocates (with 50% headroom) only when the buffer is full. `keys`/`values` are views of the buffer.
    """
    global _CACHE_CLS
    if _CACHE_CLS is None:
        from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

        class _GrowLayer(DynamicLayer):
            def update(self, key_states, value_states, *args, **kwargs):
                if not self.is_initialized:
                    self.lazy_initialization(key_states, value_states)
                n = self.keys.shape[-2] if self.keys.numel() else 0
                s = key_states.shape[-2]
                kb = getattr(self, "_kb", None)
                if kb is None or n + s > kb.shape[-2] or kb.shape[0] != key_states.shape[0] or n == 0:
                    self.set(self.keys if n else key_states[:, :, :0], self.values if n else value_states[:, :, :0],
                             extra=s)
                    kb = self._kb
                kb[:, :, n : n + s] = key_states
                self._vb[:, :, n : n + s] = value_states
                self.keys, self.values = kb[:, :, : n + s], self._vb[:, :, : n + s]
                return self.keys, self.values

            def set(self, keys, values, extra: int = 0) -> None:
                """Replace the contents (after batch surgery) by `keys`/`values` [B, H, L, D]."""
                B, H, L, D = keys.shape
                cap = L + extra + max(32, (L + extra) // 2)
                self._kb = keys.new_empty((B, H, cap, D))
                self._vb = values.new_empty((B, H, cap, values.shape[-1]))
                self._kb[:, :, :L] = keys
                self._vb[:, :, :L] = values
                self.keys, self.values = self._kb[:, :, :L], self._vb[:, :, :L]
                self.is_initialized = True
                self.device = keys.device

        class _GrowCache(DynamicCache):
            def __init__(self):
                Cache.__init__(self, layer_class_to_replicate=_GrowLayer)

        _CACHE_CLS = _GrowCache
    return _CACHE_CLS()


def _set_kv(layer: Any, keys: Any, values: Any) -> None:
    if hasattr(layer, "set"):
        layer.set(keys, values)
    else:
        layer.keys, layer.values = keys, values


def _layers(cache: Any) -> list[Any]:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise StageError("this transformers version's DynamicCache has no `layers`; r1cli needs transformers>=5.20")
    return layers


class _LeanDecode:
    """One decoding step (one new token per row) of a Llama- or Qwen2-architecture model, written out.

    The same tensor operations as transformers' forward for these architectures (RMSNorm in float32, RoPE from the
    model's own rotary module, SDPA with GQA query packing under a padding mask), minus its per-call machinery
    (output capturing, mask building, kwargs plumbing, hub-kernel hooks): far fewer Python calls per token, which is
    what a decoding step of a small model costs on CPU. Linear layers are called as modules, so PEFT adapters and
    4-bit layers work unchanged. Prefill still runs the model's own forward. `of(model)` returns None for any other
    architecture or setting (sliding-window layers, non-SDPA attention, non-RMSNorm norms), and the engine then
    uses the model's forward for every step.
    """

    ARCHS = ("LlamaForCausalLM", "Qwen2ForCausalLM")

    def __init__(self, lm: Any, layers: list[tuple]):
        self.lm, self.layers = lm, layers

    @classmethod
    def of(cls, model: Any) -> _LeanDecode | None:
        lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        if type(lm).__name__ not in cls.ARCHS:
            return None
        cfg = lm.config
        if getattr(cfg, "_attn_implementation", None) != "sdpa" or any(
                t != "full_attention" for t in (getattr(cfg, "layer_types", None) or ())):
            return None
        layers = []
        for layer in lm.model.layers:
            at, mlp = layer.self_attn, layer.mlp
            norms = (layer.input_layernorm, layer.post_attention_layernorm)
            if not all(hasattr(n, "variance_epsilon") and "RMSNorm" in type(n).__name__ for n in norms):
                return None
            if getattr(at, "sliding_window", None) is not None:
                return None
            layers.append((norms[0], at.q_proj, at.k_proj, at.v_proj, at.o_proj, at.head_dim, at.num_key_value_groups,
                           at.scaling, norms[1], mlp.gate_proj, mlp.up_proj, mlp.down_proj, mlp.act_fn))
        if "RMSNorm" not in type(lm.model.norm).__name__:
            return None
        return cls(lm, layers)

    @staticmethod
    def _rms(x: Any, norm: Any) -> Any:
        import torch

        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
        return norm.weight * h.to(x.dtype)

    @staticmethod
    def _rotate_half(x: Any) -> Any:
        import torch

        d = x.shape[-1] // 2
        return torch.cat((-x[..., d:], x[..., :d]), dim=-1)

    def __call__(self, ids: Any, mask: Any, pos: Any, cache: Any) -> Any:
        """ids, pos: [B, 1]; mask: [B, L] (1 = attend, the new token included); cache: L - 1 columns before the call,
        L after -> logits [B, V] of the new token."""
        import torch.nn.functional as F

        base, rms, rot = self.lm.model, self._rms, self._rotate_half
        B = ids.shape[0]
        x = base.embed_tokens(ids)
        cos, sin = base.rotary_emb(x, pos)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        # as transformers: no mask when no column is padding (SDPA's GQA path), else [B, 1, 1, L] shared by all heads
        attend = None if bool(mask.all()) else mask.bool()[:, None, None, :]
        for i, (n1, q_proj, k_proj, v_proj, o_proj, D, rep, scale, n2, gate, up, down, act) in enumerate(self.layers):
            h = rms(x, n1)
            q = q_proj(h).view(B, 1, -1, D).transpose(1, 2)
            k = k_proj(h).view(B, 1, -1, D).transpose(1, 2)
            v = v_proj(h).view(B, 1, -1, D).transpose(1, 2)
            q = q * cos + rot(q) * sin
            k = k * cos + rot(k) * sin
            k, v = cache.layers[i].update(k, v)
            if rep > 1 and attend is None and D <= 256:
                o = F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)
            else:  # one query token: the rep query heads of a KV head attend as rep rows of it (no repeat_kv copy)
                o = F.scaled_dot_product_attention(q.reshape(B, -1, rep, D) if rep > 1 else q, k, v,
                                                   attn_mask=attend, scale=scale)
            x = x + o_proj(o.reshape(B, -1, 1, D).transpose(1, 2).reshape(B, 1, -1))
            h = rms(x, n2)
            x = x + down(act(gate(h)) * up(h))
        return self.lm.lm_head(rms(x, base.norm))[:, -1]


class _HFEngine:
    def __init__(self, model, tokenizer, *, temperature, top_p, max_new_tokens, stop, seed, top_k=0, min_p=0.0,
                 share_prefill=True, prefill_tokens=16384, logprobs=False, eos_ids=None, lean_decode=True):
        import torch

        self.torch = torch
        self.model = model
        self.tok = tokenizer
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = int(top_k)
        self.min_p = float(min_p or 0.0)
        self.logprobs = bool(logprobs)
        self.max_new = int(max_new_tokens)
        self.stop = tuple(stop)
        self.seed = int(seed)
        self.share_prefill = bool(share_prefill)
        self.prefill_tokens = int(prefill_tokens)
        self.device = next(model.parameters()).device
        eos = sorted({int(t) for t in eos_ids}) if eos_ids is not None else eos_token_ids(model, tokenizer)
        self.eos = torch.tensor(eos or [-1], device=self.device)
        pad = tokenizer.pad_token_id
        self.pad = int(pad if pad is not None else (eos[0] if eos else 0))
        self.cache_kw = _cache_kwarg(model)
        self.keep_kw = _accepts(model, "logits_to_keep")
        self.lean = _LeanDecode.of(model) if lean_decode else None
        self.stop_window = max((len(s.encode()) for s in self.stop), default=0) + 2
        cands = _stop_candidate_ids(tokenizer, self.stop) if self.stop else []
        self.stop_all = cands is None
        self.stop_ids = torch.tensor(cands or [-1], device=self.device)
        self.stats = GenerationStats()

    # -- model calls ------------------------------------------------------------------------------------------

    def _forward(self, ids, mask, pos, cache):
        kw = {self.cache_kw: cache, "use_cache": True}
        if self.keep_kw:
            kw["logits_to_keep"] = 1
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, **kw)
        return out.logits[:, -1, :]

    def _encode(self, prompt: str | Sequence[int]) -> list[int]:
        """Prompt ids: given as ids, or rendered text through the one prompt->token path (one BOS at most)."""
        from r1cli.prompts import encode_prompt

        if isinstance(prompt, str):
            return encode_prompt(self.tok, prompt)
        ids = [int(t) for t in prompt]
        if not ids:
            raise ValueError("an empty prompt has nothing to condition on: give at least one token")
        return ids

    def _prefill(self, rows: list[tuple[int, int]], prompt_ids: list[list[int]], keys: list[int]) -> _Batch:
        """Prefill the distinct prompts of `rows` once (each row when prefill sharing is off), copy their cache
        rows to every sample, and sample each row's first token."""
        torch = self.torch
        uniq: dict[Any, int] = {}
        seqs = []
        for r in rows:
            if self._seq_key(r) not in uniq:
                uniq[self._seq_key(r)] = len(uniq)
                seqs.append(prompt_ids[r[0]])
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, L - len(s):] = torch.tensor(s)
            mask[i, L - len(s):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(1) - 1).clamp_(min=0)
        cache = _new_cache()
        logits = self._forward(ids, mask, pos, cache)
        self.stats.prefills += 1
        sel = torch.tensor([uniq[self._seq_key(r)] for r in rows], device=self.device)
        if len(seqs) != len(rows) or not bool((sel == torch.arange(len(rows), device=self.device)).all()):
            for layer in _layers(cache):
                _set_kv(layer, layer.keys.index_select(0, sel), layer.values.index_select(0, sel))
            logits, mask = logits.index_select(0, sel), mask.index_select(0, sel)
        lens = mask.sum(1)
        B = len(rows)
        b = _Batch(
            cache=cache,
            mask=mask,
            pos=lens - 1,  # _step_tokens advances it: the first sampled token sits at position len(prompt)
            last=torch.full((B,), self.pad, dtype=torch.long, device=self.device),
            out=torch.full((B, self.max_new), self.pad, dtype=torch.long, device=self.device),
            lp=torch.zeros((B, self.max_new), dtype=torch.float32, device=self.device) if self.logprobs else None,
            n_gen=torch.zeros(B, dtype=torch.long, device=self.device),
            alive=torch.ones(B, dtype=torch.bool, device=self.device),
            keys=torch.tensor(keys, dtype=torch.long, device=self.device),
            rows=list(rows),
        )
        self._step_tokens(b, logits)
        return b

    def _chunks(self, rows: list[tuple[int, int]], prompt_ids: list[list[int]]) -> list[list[tuple[int, int]]]:
        """Split queued rows (prompt-major) into prefill chunks of at most `prefill_tokens` padded prompt tokens
        (at least one prompt each), so a long-prompt refill does not allocate activations for all rows at once."""
        chunks: list[list[tuple[int, int]]] = []
        cur: list[tuple[int, int]] = []
        seen: set[Any] = set()  # the sequences the current chunk prefills
        longest = 0
        for r in rows:
            new_seq = self._seq_key(r) not in seen
            L = max(longest, len(prompt_ids[r[0]]))
            if cur and new_seq and (len(seen) + 1) * L > self.prefill_tokens:
                chunks.append(cur)
                cur, seen, L = [], set(), len(prompt_ids[r[0]])
            cur.append(r)
            seen.add(self._seq_key(r))
            longest = L
        if cur:
            chunks.append(cur)
        return chunks

    def _seq_key(self, row: tuple[int, int]) -> Any:
        """What one prefill sequence serves: a distinct prompt (any prompt index with the same ids), or one row."""
        return self.pid[row[0]] if self.share_prefill else row

    # -- one sampling step -------------------------------------------------------------------------------------

    def _step_tokens(self, b: _Batch, logits) -> None:
        """Sample the next token of every live row, record it, mark rows that finished (b.alive)."""
        torch = self.torch
        u = row_uniforms(b.keys, b.n_gen) if self.temperature > 0 else None
        tok = sample_tokens(logits, u, self.temperature, self.top_p, self.top_k, self.min_p)
        alive = b.alive
        tok = torch.where(alive, tok, self.pad)
        idx = b.n_gen.clamp(max=self.max_new - 1).unsqueeze(1)
        b.out.scatter_(1, idx, torch.where(alive, tok, b.out.gather(1, idx).squeeze(1)).unsqueeze(1))
        if b.lp is not None:
            lp = token_logprobs(logits, tok, self.temperature)
            b.lp.scatter_(1, idx, torch.where(alive, lp, b.lp.gather(1, idx).squeeze(1)).unsqueeze(1))
        b.n_gen += alive.long()
        b.last = tok
        b.pos = b.pos + 1
        done = alive & (torch.isin(tok, self.eos) | (b.n_gen >= self.max_new))
        if self.stop:
            cand = alive & ~done
            if not self.stop_all:
                cand &= torch.isin(tok, self.stop_ids)
            if bool(cand.any()):
                for r in cand.nonzero().flatten().tolist():
                    k = int(b.n_gen[r])
                    window = self.tok.decode(b.out[r, max(0, k - self.stop_window):k].tolist(),
                                             skip_special_tokens=False)
                    if any(s in window for s in self.stop):
                        done[r] = True
        b.alive = alive & ~done
        self._newly_done = done

    # -- batch surgery -----------------------------------------------------------------------------------------

    def _select(self, b: _Batch, keep) -> _Batch:
        """Keep rows `keep` (int64 index [B']) and cut left columns that are padding in all of them."""
        mask = b.mask.index_select(0, keep)
        lead = int((mask.cumsum(1) == 0).sum(1).min()) if len(keep) else 0
        mask = mask[:, lead:]
        for layer in _layers(b.cache):
            _set_kv(layer, layer.keys[:, :, lead:].index_select(0, keep), layer.values[:, :, lead:].index_select(0, keep))
        rows = [b.rows[i] for i in keep.tolist()]
        return _Batch(b.cache, mask, b.pos.index_select(0, keep), b.last.index_select(0, keep),
                      b.out.index_select(0, keep), None if b.lp is None else b.lp.index_select(0, keep),
                      b.n_gen.index_select(0, keep), b.alive.index_select(0, keep), b.keys.index_select(0, keep), rows)

    def _merge(self, a: _Batch, c: _Batch) -> _Batch:
        """Concatenate two batches, left-padding the shorter cache with zeros (masked out)."""
        torch = self.torch
        if len(a) == 0:
            return c
        if len(c) == 0:
            return a
        La, Lc = a.mask.shape[1], c.mask.shape[1]
        L = max(La, Lc)

        def pad(t, n, dim):
            if n == 0:
                return t
            shape = list(t.shape)
            shape[dim] = n
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        for la, lc in zip(_layers(a.cache), _layers(c.cache), strict=True):
            _set_kv(la, torch.cat([pad(la.keys, L - La, 2), pad(lc.keys, L - Lc, 2)], 0),
                    torch.cat([pad(la.values, L - La, 2), pad(lc.values, L - Lc, 2)], 0))
        return _Batch(
            a.cache,
            torch.cat([pad(a.mask, L - La, 1), pad(c.mask, L - Lc, 1)], 0),
            torch.cat([a.pos, c.pos]), torch.cat([a.last, c.last]), torch.cat([a.out, c.out]),
            None if a.lp is None else torch.cat([a.lp, c.lp]), torch.cat([a.n_gen, c.n_gen]), torch.cat([a.alive, c.alive]), torch.cat([a.keys, c.keys]),
            a.rows + c.rows,
        )

    # -- main loop ---------------------------------------------------------------------------------------------

    def run(self, prompts, n, batch_size, progress, on_prompt_done) -> list[list[Sample]]:
        torch = self.torch
        t0 = time.perf_counter()
        # a prompt given as ids is keyed by its ids' text, so its samples depend on the seed and the prompt alone
        names = [p if isinstance(p, str) else " ".join(map(str, p)) for p in prompts]
        uniq_ids: dict[str, list[int]] = {}
        prompt_ids = []
        for p, name in zip(prompts, names, strict=True):
            if name not in uniq_ids:
                uniq_ids[name] = self._encode(p)
            prompt_ids.append(uniq_ids[name])
        # prompts with the same ids (also one given as text, one as ids) share their prefill
        distinct: dict[tuple[int, ...], int] = {}
        self.pid = [distinct.setdefault(tuple(ids), len(distinct)) for ids in prompt_ids]
        seen: dict[str, int] = {}
        occ = []
        for name in names:
            occ.append(seen.get(name, 0))
            seen[name] = occ[-1] + 1
        queue = [(i, j) for i in range(len(prompts)) for j in range(n)]
        keys = {(i, j): row_key(self.seed, names[i], occ[i], j) for i, j in queue}
        if batch_size is None:
            batch_size = default_batch_size(self.model, max(len(s) for s in prompt_ids) + self.max_new)
        cap = max(1, int(batch_size))
        refill_at = max(1, cap // 4)
        results: list[list[Sample | None]] = [[None] * n for _ in prompts]
        left = [n] * len(prompts)
        total = len(queue)
        self.stats = stats = GenerationStats()
        bar = _Progress(total, enabled=progress)
        qi = 0
        b: _Batch | None = None
        with torch.inference_mode():
            while True:
                live = int(b.alive.sum()) if b is not None else 0
                dead = (len(b) if b is not None else 0) - live
                refill = qi < total and (cap - live >= refill_at or live == 0)
                if dead and (refill or (qi >= total and dead * 2 >= len(b))):
                    b = self._select(b, b.alive.nonzero().flatten())
                if refill:
                    take = queue[qi : qi + cap - (len(b) if b is not None else 0)]
                    qi += len(take)
                    for chunk in self._chunks(take, prompt_ids):
                        c = self._prefill(chunk, prompt_ids, [keys[r] for r in chunk])
                        self._finish(c, results, left, on_prompt_done, stats, bar)
                        b = c if b is None else self._merge(b, c)
                    stats.max_rows = max(stats.max_rows, len(b))
                    continue
                if live == 0:
                    break
                b.mask = torch.cat([b.mask, b.mask.new_ones((len(b), 1))], 1)
                step = self.lean or self._forward
                logits = step(b.last.unsqueeze(1), b.mask, b.pos.unsqueeze(1), b.cache)
                stats.steps += 1
                self._step_tokens(b, logits)
                self._finish(b, results, left, on_prompt_done, stats, bar)
        stats.seconds = time.perf_counter() - t0
        bar.close(stats)
        global LAST_STATS
        LAST_STATS = stats
        return results  # type: ignore[return-value]

    def _finish(self, b: _Batch, results, left, on_prompt_done, stats, bar) -> None:
        """Turn rows that finished this step into Samples."""
        done = self._newly_done
        if not bool(done.any()):
            return
        eos = set(self.eos.tolist())
        for r in done.nonzero().flatten().tolist():
            p, j = b.rows[r]
            k = int(b.n_gen[r])
            ids = b.out[r, :k].tolist()
            reason: FinishReason = "length"
            text_ids = ids
            if ids and ids[-1] in eos:
                reason, text_ids = "stop", ids[:-1]
            text = self.tok.decode(text_ids, skip_special_tokens=True)
            if self.stop:
                cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
                if cut >= 0:
                    text, reason = text[:cut], "stop"
            lps = b.lp[r, :k].tolist() if b.lp is not None else None
            results[p][j] = Sample(text=text, n_tokens=k, finish_reason=reason, token_ids=ids, logprobs=lps)
            stats.completions += 1
            stats.tokens += k
            left[p] -= 1
            if left[p] == 0 and on_prompt_done is not None:
                on_prompt_done(p, results[p])  # type: ignore[arg-type]
        bar.update(stats)


class _Progress:
    """A rich progress bar on stderr (completions, tokens/s), refreshed at most 5 times a second."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.p = None
        if enabled and os.environ.get("R1CLI_QUIET") != "1":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from r1cli.console import err

            self.p = Progress(TextColumn("generate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              TextColumn("{task.fields[rate]}"), console=err(), transient=True)
            self.task = self.p.add_task("gen", total=total, rate="")
            self.p.start()

    def update(self, s: GenerationStats) -> None:
        if self.p is None:
            return
        now = time.perf_counter()
        if now - self.last < 0.2 and s.completions < self.total:
            return
        self.last = now
        dt = max(now - self.t0, 1e-9)
        self.p.update(self.task, completed=s.completions, rate=f"{s.tokens / dt:,.0f} tok/s")

    def close(self, s: GenerationStats) -> None:
        if self.p is None:
            return
        self.p.stop()
        from r1cli.console import log

        log(f"generated {s.completions} completions, {s.tokens} tokens in {s.seconds:.1f} s "
            f"({s.tokens_per_s:,.0f} tok/s, {s.steps} steps, {s.prefills} prefills, up to {s.max_rows} rows)")


# ---------------------------------------------------------------------------------------------- vllm


def _vllm_model_path(model: Any) -> tuple[str, Any]:
    """A path vLLM can load: a PEFT adapter folder is merged into its base in a temporary folder first (removed
    when the returned handle is cleaned up)."""
    import tempfile
    from pathlib import Path

    path = Path(str(model))
    if not (path / "adapter_config.json").is_file():
        return str(model), None
    from r1cli.console import log
    from r1cli.models import merge_adapter

    tmp = tempfile.TemporaryDirectory(prefix="r1cli-vllm-merged-")
    log(f"vllm: merging the PEFT adapter {path} into its base ({tmp.name})")
    merge_adapter(path, Path(tmp.name) / "model")
    return str(Path(tmp.name) / "model"), tmp


def _generate_vllm(model, tokenizer, prompts, n, temperature, top_p, top_k, min_p, max_new_tokens, stop, seed,
                   on_prompt_done, logprobs, eos_ids, *, dtype: str = "auto", gpu_memory_utilization: float = 0.9,
                   chunk: int = 64):
    """vLLM with the same prompt ids as the hf backend (`TokensPrompt`s, so vLLM adds no second BOS), prompts
    submitted in chunks so `on_prompt_done` reports finished prompts as they finish (a killed run keeps them).
    Log-probs are vLLM's `processed_logprobs` (after temperature and its filters, as TRL's vLLM path reads them)
    when this call builds the `vllm.LLM`; a given `vllm.LLM` reports in the mode it was built with."""
    try:
        import vllm
    except ImportError:
        raise StageError(
            "backend 'vllm' needs the vllm package, which is not installed",
            hint="pip install 'r1cli[vllm]' on a machine with a CUDA GPU, or use backend: hf",
        ) from None
    import torch

    from r1cli.prompts import encode_prompt

    if not torch.cuda.is_available():
        raise StageError("backend 'vllm' needs a CUDA GPU and none is visible", hint="use backend: hf on CPU")
    ids = [encode_prompt(tokenizer, p) if isinstance(p, str) else [int(t) for t in p] for p in prompts]
    merged = None
    if isinstance(model, vllm.LLM):
        llm = model
    else:
        path, merged = _vllm_model_path(model)
        llm = vllm.LLM(model=path, seed=seed, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max(len(x) for x in ids) + max_new_tokens,
                       **({"logprobs_mode": "processed_logprobs"} if logprobs else {}))
    extra: dict[str, Any] = {"top_k": top_k} if top_k > 0 else {}
    if min_p > 0:
        extra["min_p"] = min_p
    if eos_ids is not None:
        extra["stop_token_ids"] = [int(t) for t in eos_ids]
    if logprobs:
        extra["logprobs"] = 0  # the sampled token's only
    params = vllm.SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                 stop=list(stop) or None, seed=seed, **extra)
    results = []
    try:
        for start in range(0, len(ids), chunk):
            outs = llm.generate([{"prompt_token_ids": x} for x in ids[start:start + chunk]], params)
            for i, o in enumerate(outs, start=start):
                samples = [
                    Sample(text=c.text, n_tokens=len(c.token_ids), token_ids=list(c.token_ids),
                           finish_reason="length" if c.finish_reason == "length" else "stop",
                           logprobs=[d[t].logprob for d, t in zip(c.logprobs, c.token_ids, strict=True)]
                           if logprobs else None)
                    for c in o.outputs
                ]
                results.append(samples)
                if on_prompt_done is not None:
                    on_prompt_done(i, samples)
    finally:
        if merged is not None:
            merged.cleanup()
    return results
