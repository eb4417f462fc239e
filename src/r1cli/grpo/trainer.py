"""`R1GRPOTrainer`: TRL's `GRPOTrainer` with r1cli's GRPO maths, faster rollouts and DAPO dynamic sampling.

TRL keeps the training loop, data loading, rollout bookkeeping, reward calls, logging, checkpoints and PEFT. This
subclass overrides five hooks, each small, and copies none of TRL's long methods:

- `_compute_loss` -> `r1cli.grpo.loss.grpo_loss`: every objective and loss option of TRL 1.16 (and GSPO-token),
  with TRL's option names and values. Gradient accumulation: the per-call means (grpo, bnpo, dr_grpo, sapo, luspo)
  and the entropy bonus are divided by the number of accumulation steps; dapo/cispo/vespo divide the token sum by
  the token count of the whole generation batch over all processes (TRL's `num_items_in_batch`, rescaled to one
  optimizer step), so the accumulated gradient is the gradient of the global token mean. Where the batch carries
  the sampler's log-probs (r1's sampler or vLLM), the sampler-vs-trainer mismatch is logged (`mismatch/*`).
- `_calculate_rewards` (TRL's reward calls, unchanged) is wrapped to keep the raw per-function rewards, from which
  `_generate_and_score_completions` recomputes the advantages with `r1cli.grpo.loss.compute_advantages`
  (weighted sum of the reward functions, then group-normalised; `compute_advantages_per_reward` for
  `multi_objective_aggregation: normalize_then_sum`), and applies dynamic sampling.
- `_generate_single_turn` -> `r1cli.generation.generate`, the engine every stage samples with, for the plain
  transformers backend (not vLLM, not multimodal, no repetition penalty): prompts prefilled once per group,
  finished rows leave the batch, sampled tokens' log-probs kept.
- `_get_per_token_logps_and_entropies` scores each distinct prompt once and its completions in length buckets
  attending to the prompt's KV cache (when the [B, C, vocab] logits are small: the tiny and SmolLM2-scale models;
  else TRL's own fused-head forward per length bucket), and, when `num_iterations > 1` makes TRL compute π_old
  right after sampling, hands back the sampler's log-probs instead of a second forward (float32 weights only: in
  bf16 the cached and uncached forwards differ by more than rounding). With several processes the gradient
  forward stays TRL's single call (DDP syncs gradients once per forward/backward pair).

Observability, on top of TRL's per-step metrics (each reward's mean/std, reward, completion lengths and clipped
share, `frac_reward_zero_std`, entropy, clip ratios, KL when `beta > 0`): `tokens_per_s` and
`completion_tokens_per_s` per logging window, and every `log_completions_every` steps a rich table of sample
completions on stderr plus the whole latest generation batch appended to `<output>/samples.jsonl`;
`log_prompts` records the prompts of each generation batch in `<output>/prompts.jsonl` (the data order).

Reference model (`beta > 0`): with PEFT there is no second copy of the base. Given a `peft_config`, TRL computes
the reference with the adapter disabled; given a model already wrapped by PEFT (what `r1cli.models.load_model`
returns with `use_peft`), TRL adds a frozen "ref" copy of the adapter (adapter-sized; for a fresh adapter it equals
the base, for a pre-trained one it is the policy at the start, which is the right reference); without PEFT this class keeps a frozen deep copy of the policy as
it was passed in (TRL would reload it from `config._name_or_path`, which fails for in-memory models).

Dynamic sampling (DAPO, arXiv 2503.14476): after a generation batch is scored, groups whose rewards are all equal
(advantage 0 everywhere, no policy gradient) are dropped; fresh prompts, drawn from the training set in a separate
seeded order, are generated and scored until the batch is full again or `max_resample_tries` rounds have run. A
batch still short after that is completed with dropped groups (advantage 0) and the shortfall is logged. Metrics:
`dynamic_sampling/zero_std_share` (first round), `dynamic_sampling/rounds`, `dynamic_sampling/unfilled_share`.
Single process only.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

from r1cli.generation import generate
from r1cli.grpo.loss import (
    GLOBAL_TOKEN_LOSSES,
    LOSS_TYPES,
    adaptive_entropy_coef,
    applied_entropy_coef,
    compute_advantages,
    compute_advantages_per_reward,
    grpo_loss,
    rollout_correction,
    rollout_mismatch,
    zero_variance_groups,
)
from r1cli.prompts import as_written, encode_prompt, prefilled_think

_MM_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)
# how the per-row tensors of a scored batch are padded when rows of several batches are joined
_RIGHT_PADDED = {
    "completion_mask": 0,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
    "tool_mask": 1,
}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def _opt(args: Any, name: str, default: Any) -> Any:
    """r1cli fields of RLConfig, with their defaults when the trainer is given a plain trl.GRPOConfig."""
    return getattr(args, name, default)


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


class R1GRPOTrainer(GRPOTrainer):
    """GRPO with r1cli's loss and advantages (`r1cli.grpo.loss`) on TRL's `GRPOTrainer`.

    Takes TRL's arguments (`args` is an `RLConfig` or a plain `trl.GRPOConfig`) plus `ref_model`: the frozen
    reference for `beta > 0` without PEFT (default: a copy of `model` taken before training).
    """

    def __init__(
        self, model: Any, reward_funcs: Any = None, args: Any = None, *, ref_model: Any = None, **kwargs
    ):
        if args is None:
            raise ValueError("R1GRPOTrainer needs args (an RLConfig or trl.GRPOConfig)")
        self._check_args(args)
        peft_config = kwargs.get("peft_config")
        own_ref = (
            args.beta != 0.0
            and isinstance(model, torch.nn.Module)
            and peft_config is None
            and not _is_peft_model(model)
        )
        if own_ref and args.cast_lm_head_to_fp32:
            raise ValueError(
                "cast_lm_head_to_fp32 with beta > 0 and no PEFT is not supported by R1GRPOTrainer"
            )
        if own_ref:
            ref_model = ref_model if ref_model is not None else copy.deepcopy(model)
            beta, sync = args.beta, args.sync_ref_model
            args.beta, args.sync_ref_model = 0.0, False  # TRL would reload the reference from _name_or_path
            try:
                super().__init__(model, reward_funcs, args, **kwargs)
            finally:
                args.beta, args.sync_ref_model = beta, sync
            self._adopt_ref_model(ref_model)
        else:
            if ref_model is not None:
                raise ValueError("ref_model is used only with beta > 0 and without PEFT")
            super().__init__(model, reward_funcs, args, **kwargs)

        self.dynamic_sampling = bool(_opt(args, "dynamic_sampling", False))
        self.max_resample_tries = int(_opt(args, "max_resample_tries", 4))
        self.fast_generation = bool(_opt(args, "fast_generation", True))
        self.reuse_generation_logprobs = bool(_opt(args, "reuse_generation_logprobs", True))
        self.length_buckets = bool(_opt(args, "length_buckets", True))
        self.share_prompt_prefix = bool(_opt(args, "share_prompt_prefix", True))
        self.prefix_sharing_max_logits_bytes = int(_opt(args, "prefix_sharing_max_logits_mb", 512)) * 2**20
        self._raw_rewards: torch.Tensor | None = None
        self._last_rewards: torch.Tensor | None = None
        self._sampler_old_logps: torch.Tensor | None = None
        self._refill_order: list[int] | None = None
        self._refill_epoch = 0
        self._refill_pos = 0
        self.log_completions_every = int(_opt(args, "log_completions_every", 0))
        self.log_prompts = bool(_opt(args, "log_prompts", False))
        out = _opt(args, "output", None)
        self.run_dir = Path(out) if out else Path(args.output_dir)  # samples.jsonl / prompts.jsonl go here
        self._last_batch: dict[str, Any] | None = None
        self._rollout_log: list[dict[str, Any]] | None = None  # set by r1cli.grpo.preflight while it samples
        self._samples_step = -1
        self._throughput_mark: tuple[float, float, float] | None = None  # (time, tokens seen, completion tokens)
        self._completion_tokens = 0.0
        if self.dynamic_sampling:
            if self.accelerator.num_processes > 1:
                raise ValueError("dynamic_sampling runs on a single process only")
            if not hasattr(self.train_dataset, "__getitem__") or not hasattr(self.train_dataset, "__len__"):
                raise ValueError("dynamic_sampling needs a map-style train_dataset (not an IterableDataset)")

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _check_args(args: Any) -> None:
        if args.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type {args.loss_type!r} is not implemented here; use one of {LOSS_TYPES}")

    def _adopt_ref_model(self, ref_model: torch.nn.Module) -> None:
        from trl.models import prepare_deepspeed, prepare_fsdp

        self.beta = self.args.beta
        ref_model.eval()
        ref_model.requires_grad_(False)
        if self.args.disable_dropout:
            disable_dropout_in_model(ref_model)
        add_fused_lm_head(ref_model, temperature=self.temperature)
        if self.is_deepspeed_enabled:
            ref_model = prepare_deepspeed(ref_model, self.accelerator)
        elif self.is_fsdp_enabled:
            ref_model = prepare_fsdp(ref_model, self.accelerator)
        else:
            ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)
        self.ref_model = ref_model
        if self.args.sync_ref_model:
            from trl.trainer.callbacks import SyncRefModelCallback

            self.add_callback(SyncRefModelCallback(ref_model=self.ref_model, accelerator=self.accelerator))

    # ------------------------------------------------------------------ rollouts

    def _tokenize_prompts(self, prompts: list):
        # rendered text goes through the one prompt->token path (one BOS at most); TRL's `tokenizer(text)` would add
        # a second BOS after a template that writes one (R1 family, Llama-3.x)
        if prompts and all(isinstance(p, str) for p in prompts):
            return [encode_prompt(self._tokenizer, p) for p in prompts], None, {}
        return super()._tokenize_prompts(prompts)

    def _generate(self, prompts: list):
        out = super()._generate(prompts)
        if self._rollout_log is not None:  # the preflight check reads the rollouts as TRL decoded them
            prompt_ids, completion_ids, _, completions = out[:4]
            self._rollout_log.append(
                {"prompt_ids": list(prompt_ids), "completion_ids": list(completion_ids), "completions": list(completions)}
            )
        return out

    def _fast_generation_applies(self, images: Any, multimodal_fields: Any) -> bool:
        return (
            self.fast_generation
            and not self.use_vllm
            and not self.use_transformers_continuous_batching
            and images is None
            and not multimodal_fields
            and self.temperature > 0
            and (self.repetition_penalty in (None, 1.0))
            and not self.args.generation_kwargs
        )

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        if not self._fast_generation_applies(images, multimodal_fields):
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        from trl.models import unwrap_model_for_generation

        with (
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped_model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            # one seed per call from torch's RNG (seeded by TRL, saved in checkpoints), apart per process: the
            # engine's counter-based draws would otherwise repeat for a prompt seen again or on another process
            seed = int(torch.randint(0, 2**31 - 1, ())) + 7919 * self.accelerator.process_index
            samples = generate(
                unwrapped_model,
                self._tokenizer,
                [list(p) for p in prompt_ids],  # one row each; repeated prompts get fresh samples, one prefill
                n=1,
                temperature=self.temperature,
                top_p=self.top_p if self.top_p is not None else 1.0,
                top_k=self.top_k or 0,
                min_p=self.min_p or 0.0,
                max_new_tokens=self.max_completion_length,
                seed=seed,
                progress=False,
                logprobs=True,
                eos_ids=self.eos_token_ids,
            )
        completion_ids = [s[0].token_ids for s in samples]
        logprobs = [s[0].logprobs for s in samples]
        self._sampler_old_logps = self._old_logps_from_sampler(logprobs)
        return completion_ids, logprobs

    def _old_logps_from_sampler(self, logprobs: list[list[float]]) -> torch.Tensor | None:
        """[B, C] right-padded sampler log-probs when TRL is about to compute π_old by a forward pass and they can
        stand in for it; else None."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        if (
            not self.reuse_generation_logprobs
            or self.args.gradient_accumulation_steps % generate_every == 0  # TRL will not compute π_old
            or self.args.bf16
            or self.args.fp16
            or self.pad_to_multiple_of is not None
            or any(p.dtype != torch.float32 for p in self.model.parameters())
        ):
            return None
        width = max((len(x) for x in logprobs), default=0)
        out = torch.zeros((len(logprobs), width), dtype=torch.float32)
        for i, row in enumerate(logprobs):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
        return out.to(self.accelerator.device)

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **kwargs,
    ):
        reuse = self._sampler_old_logps
        if (
            reuse is not None
            and model is self.model
            and not torch.is_grad_enabled()
            and not compute_entropy
            and not compute_aux_loss
            and tuple(reuse.shape) == (input_ids.size(0), logits_to_keep)
        ):
            # the π_old forward right after sampling: the sampler already scored these tokens
            self._sampler_old_logps = None
            return reuse, None, None
        multimodal = any(v is not None for k, v in kwargs.items() if k in _MM_KEYS)
        # several forward calls before one backward would upset DDP's gradient sync: one call with several processes
        distributed_grad = torch.is_grad_enabled() and self.accelerator.num_processes > 1
        if (
            not self.length_buckets
            or multimodal
            or compute_aux_loss
            or distributed_grad
            or input_ids.size(0) < 2
        ):
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **kwargs,
            )
        if self._prefix_sharing_applies(model, input_ids, logits_to_keep):
            return self._shared_prefix_logps(
                model, input_ids, attention_mask, logits_to_keep, compute_entropy
            )
        return self._bucketed_logps(
            model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy
        )

    def _prefix_sharing_applies(self, model, input_ids, logits_to_keep) -> bool:
        """The shared-prompt forward materialises [B, C, V] logits (TRL's fused head does not): only when they are
        small, without gradient checkpointing or a float32 LM-head cast, and when prompts repeat (G > 1)."""
        if not self.share_prompt_prefix or self.args.cast_lm_head_to_fp32 or self.num_generations < 2:
            return False
        unwrapped = self.accelerator.unwrap_model(model)
        if getattr(unwrapped, "is_gradient_checkpointing", False) and torch.is_grad_enabled():
            return False
        vocab = unwrapped.get_output_embeddings().weight.shape[0]
        return input_ids.size(0) * logits_to_keep * vocab * 4 <= self.prefix_sharing_max_logits_bytes

    def _bucketed_logps(self, model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy):
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
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy
            )
        logps = None
        entropies = None
        for rows in buckets:
            idx = torch.as_tensor(rows, device=input_ids.device)
            pb = max(prompt_len[i] for i in rows)
            cb = max(1, max(comp_len[i] for i in rows))
            ids_b = input_ids[idx, P - pb : P + cb]
            mask_b = attention_mask[idx, P - pb : P + cb]
            lp, ent, _ = super()._get_per_token_logps_and_entropies(
                model, ids_b, mask_b, cb, batch_size, compute_entropy
            )
            if logps is None:
                logps = lp.new_zeros((B, C))
                entropies = lp.new_zeros((B, C)) if compute_entropy else None
            logps = logps.index_put((idx[:, None], torch.arange(cb, device=idx.device)[None, :]), lp)
            if compute_entropy:
                entropies = entropies.index_put(
                    (idx[:, None], torch.arange(cb, device=idx.device)[None, :]), ent
                )
        return logps, entropies, None

    def _shared_prefix_logps(self, model, input_ids, attention_mask, logits_to_keep, compute_entropy):
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
        pu = int(
            prompt_mask[uniq].sum(1).max()
        )  # longest prompt: the columns to its left are padding everywhere
        u_ids, u_mask = prompt_ids[uniq, P - pu :], prompt_mask[uniq, P - pu :]
        u_pos = (u_mask.cumsum(-1) - 1).clamp(min=0)
        unwrapped = self.accelerator.unwrap_model(model)
        config = getattr(unwrapped, "config", None)
        cache_arg = _cache_kwarg(unwrapped)
        cache = DynamicCache(config=config)
        with self.accelerator.autocast():
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
            bucket_cache = DynamicCache(config=config)
            for layer_idx, (k, v) in enumerate(kv):
                bucket_cache.update(k[u_of], v[u_of], layer_idx)
            with self.accelerator.autocast():
                out = model(
                    input_ids=c_ids,
                    attention_mask=c_mask,
                    position_ids=c_pos,
                    use_cache=True,
                    **{cache_arg: bucket_cache},
                )
            logits = torch.cat([first_logits[u_of, None, :], out.logits[:, : cb - 1, :]], dim=1).float()
            logits = logits / self.temperature
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

    # ------------------------------------------------------------------ rewards, advantages, dynamic sampling

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # rewards read the completion as the model wrote it: a `<think>` the template pre-filled is put back, as
        # `r1 eval` and reject-sample do before grading
        completions = [
            as_written(prefilled_think(p), c) if isinstance(p, str) and isinstance(c, str) else c
            for p, c in zip(prompts, completions, strict=True)
        ]
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._raw_rewards = rewards_per_func
        return rewards_per_func

    def _total_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """[N, F] rewards per function (NaN = not applicable) -> [N] weighted sum; NaN where no function applied."""
        w = self.reward_weights.to(rewards_per_func.device)
        total = (rewards_per_func * w.unsqueeze(0)).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return total

    def _score_once(self, inputs: list[dict[str, Any]]) -> tuple[dict[str, Any], torch.Tensor]:
        self._raw_rewards = None
        try:
            out = super()._generate_and_score_completions(inputs)
        finally:
            self._sampler_old_logps = None
        if self._raw_rewards is None:  # pragma: no cover - TRL always scores through _calculate_rewards
            raise RuntimeError("TRL did not call _calculate_rewards")
        return out, self._total_rewards(self._raw_rewards)

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval
        out, rewards = self._score_once(inputs)  # rewards: gathered over processes
        if self.dynamic_sampling and mode == "train":
            out, rewards = self._dynamic_sampling(out, rewards, inputs, G)
        if self.multi_objective_aggregation == "normalize_then_sum":  # GDPO: per reward function first
            advantages = compute_advantages_per_reward(self._raw_rewards, self.reward_weights, G)
        else:
            advantages = compute_advantages(rewards, G, self.scale_rewards)
        self._last_rewards = rewards  # [N] total reward of each row of the batch, all processes
        n_local = out["completion_ids"].size(0)
        start = self.accelerator.process_index * n_local
        out["advantages"] = advantages[start : start + n_local].to(out["completion_ids"].device)
        if mode == "train":
            self._completion_tokens += float(out["completion_mask"].sum().item())
            self._remember_batch(inputs, out, rewards[start : start + n_local])
        return out

    # ------------------------------------------------------------------ observability

    def _remember_batch(self, inputs: list[dict[str, Any]], out: dict[str, Any], rewards: torch.Tensor) -> None:
        """Keep the latest training generation batch for the sample table; log its prompts when asked."""
        if self.log_prompts and self.accelerator.is_main_process:
            import json

            rec = {
                "step": self.state.global_step + 1,  # the optimizer step this batch is generated for
                "prompts": [str(x.get("question", x["prompt"])) for x in inputs],
            }
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "prompts.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        if not self.log_completions_every:
            return
        raw = self._raw_rewards
        per_func = None
        if raw is not None and raw.size(0) == rewards.size(0) * self.accelerator.num_processes:
            start = self.accelerator.process_index * rewards.size(0)
            per_func = raw[start : start + rewards.size(0)].detach().cpu()
        self._last_batch = {
            "generated_for_step": self.state.global_step + 1,
            "prompt_ids": out["prompt_ids"].detach().cpu(),
            "prompt_mask": out["prompt_mask"].detach().cpu(),
            "completion_ids": out["completion_ids"].detach().cpu(),
            "completion_mask": out["completion_mask"].detach().cpu(),
            "reward": rewards.detach().cpu(),
            "rewards_per_func": per_func,
            "advantage": out["advantages"].detach().cpu(),
        }

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:
            self._log_throughput(logs)
        super().log(logs, start_time)
        every = self.log_completions_every
        if (
            every
            and self._last_batch is not None
            and self.state.global_step % every == 0
            and self.state.global_step != self._samples_step  # the end-of-training log repeats the last step
            and self.accelerator.is_main_process
        ):
            self._samples_step = self.state.global_step
            self.log_samples(self._last_batch)

    def _log_throughput(self, logs: dict[str, float]) -> None:
        """`tokens_per_s` (prompt + completion tokens through the model) and `completion_tokens_per_s` (generated
        tokens) since the previous log, wall clock, this process."""
        import time

        now, seen = time.perf_counter(), float(self.state.num_input_tokens_seen)
        mark = self._throughput_mark
        if mark is not None and now > mark[0]:
            dt = now - mark[0]
            logs["tokens_per_s"] = (seen - mark[1]) / dt
            logs["completion_tokens_per_s"] = (self._completion_tokens - mark[2]) / dt
        self._throughput_mark = (now, seen, self._completion_tokens)

    def _train_wall_start(self) -> None:
        import time

        if self._throughput_mark is None:
            self._throughput_mark = (
                time.perf_counter(),
                float(self.state.num_input_tokens_seen),
                self._completion_tokens,
            )

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._train_wall_start()
        return super().training_step(model, inputs, num_items_in_batch)

    def log_samples(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Decode a remembered generation batch -> rows {step, prompt, completion, reward, rewards, advantage,
        length}; append them all to `<run_dir>/samples.jsonl`, print `num_completions_to_print` (default 4) of
        them as a rich table on stderr, and return the rows."""
        import json

        tok = self._tokenizer
        names = list(self.reward_func_names)
        rows = []
        for i in range(batch["completion_ids"].size(0)):
            p = batch["prompt_ids"][i][batch["prompt_mask"][i].bool()].tolist()
            c = batch["completion_ids"][i][batch["completion_mask"][i].bool()].tolist()
            pf = batch["rewards_per_func"]
            rows.append(
                {
                    "step": self.state.global_step,
                    "generated_for_step": batch["generated_for_step"],
                    "prompt": tok.decode(p, skip_special_tokens=False),
                    "completion": tok.decode(c, skip_special_tokens=True),
                    "reward": _finite(batch["reward"][i].item()),
                    "rewards": {n: _finite(pf[i, j].item()) for j, n in enumerate(names)} if pf is not None else {},
                    "advantage": float(batch["advantage"][i].item()),
                    "length": len(c),
                }
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "samples.jsonl", "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        self._print_samples(rows, names)
        return rows

    def _print_samples(self, rows: list[dict[str, Any]], names: list[str]) -> None:
        import os

        if os.environ.get("R1CLI_QUIET") == "1":
            return
        from rich.table import Table

        from r1cli.console import err

        n = self.args.num_completions_to_print or 4
        G = self.num_generations
        # one completion from each of the first groups: different prompts, not G samples of one
        picked = [rows[i] for i in range(0, len(rows), G)][:n]
        table = Table(title=f"sample completions, step {self.state.global_step}", show_lines=True)
        table.add_column("prompt (end)", max_width=40, overflow="fold")
        table.add_column("completion", max_width=80, overflow="fold")
        for name in names:
            table.add_column(name, justify="right")
        table.add_column("advantage", justify="right")
        for r in picked:
            table.add_row(
                r["prompt"][-120:],
                r["completion"][:400],
                *[_fmt(r["rewards"].get(name)) for name in names],
                f"{r['advantage']:.2f}",
            )
        err().print(table)

    def _draw_refill(self, n_prompts: int, G: int) -> list[dict[str, Any]]:
        """n_prompts fresh training rows, each repeated G times, from a seeded permutation separate from TRL's
        sampler (epoch e uses seed + 7919·e; the position is saved with checkpoints)."""
        rows: list[dict[str, Any]] = []
        for _ in range(n_prompts):
            if self._refill_order is None:
                self._refill_order = self._refill_permutation(self._refill_epoch)
            if self._refill_pos >= len(self._refill_order):
                self._refill_epoch, self._refill_pos = self._refill_epoch + 1, 0
                self._refill_order = self._refill_permutation(self._refill_epoch)
            row = self.train_dataset[self._refill_order[self._refill_pos]]
            self._refill_pos += 1
            rows.extend(dict(row) for _ in range(G))
        return rows

    def _refill_permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(int(self.args.seed) + 7919 * (epoch + 1))
        return torch.randperm(len(self.train_dataset), generator=g).tolist()

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.dynamic_sampling and self.args.should_save:
            import json
            import os

            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            with open(os.path.join(folder, "dynamic_sampling_state.json"), "w") as f:
                json.dump({"epoch": self._refill_epoch, "position": self._refill_pos}, f)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if self.dynamic_sampling and checkpoint is not None:
            import json
            import os

            path = os.path.join(checkpoint, "dynamic_sampling_state.json")
            if os.path.exists(path):
                with open(path) as f:
                    state = json.load(f)
                self._refill_epoch, self._refill_pos = int(state["epoch"]), int(state["position"])
                self._refill_order = self._refill_permutation(self._refill_epoch)

    def _dynamic_sampling(self, out, rewards, inputs, G):
        n_groups = rewards.numel() // G
        flat = zero_variance_groups(rewards, G)
        mode = "train"
        metrics = self._metrics[mode]
        metrics["dynamic_sampling/zero_std_share"].append(flat.float().mean().item())
        keep = (~flat).nonzero().squeeze(1).tolist()
        parts = [(out, rewards, keep)]
        have, rounds, generated, good_total = len(keep), 0, n_groups, len(keep)
        while have < n_groups and rounds < self.max_resample_tries:
            rounds += 1
            need = n_groups - have
            keep_rate = max(
                good_total / generated, 0.25
            )  # oversample by the share of useful groups seen so far
            n_new = min(n_groups, math.ceil(need / keep_rate))
            o2, r2 = self._score_once(self._draw_refill(n_new, G))
            good = (~zero_variance_groups(r2, G)).nonzero().squeeze(1).tolist()
            generated, good_total = generated + n_new, good_total + len(good)
            parts.append((o2, r2, good[:need]))
            have += len(good[:need])
        metrics["dynamic_sampling/rounds"].append(float(rounds))
        short = n_groups - have
        metrics["dynamic_sampling/unfilled_share"].append(short / n_groups)
        if rounds == 0:
            return out, rewards
        if short:
            parts.append((out, rewards, flat.nonzero().squeeze(1).tolist()[:short]))
            from r1cli.console import log

            log(
                f"[yellow]dynamic sampling[/]: {short} of {n_groups} prompt groups still had equal rewards after "
                f"{rounds} extra round(s); kept them with advantage 0"
            )
        return self._join_groups(parts, G)

    def _join_groups(self, parts, G):
        """Rows of the chosen groups of several scored batches -> one scored batch (tensors re-padded)."""
        pad_id = self._tokenizer.pad_token_id
        sel = []
        for o, r, groups in parts:
            rows = torch.tensor([g * G + j for g in groups for j in range(G)], dtype=torch.long)
            sel.append((o, r, rows))
        rewards = torch.cat([r[rows.to(r.device)] for _, r, rows in sel])
        out: dict[str, Any] = {}
        for key, value in sel[0][0].items():
            if key in ("advantages", "num_items_in_batch"):
                continue
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                raise ValueError(f"dynamic_sampling cannot join the batch field {key!r}")
            chunks = [o[key][rows.to(o[key].device)] for o, _, rows in sel]
            if value.dim() == 1:
                out[key] = torch.cat(chunks)
                continue
            width = max(c.size(1) for c in chunks)
            if key == "prompt_ids" or key == "prompt_mask":
                fill = pad_id if key == "prompt_ids" else 0
                chunks = [torch.nn.functional.pad(c, (width - c.size(1), 0), value=fill) for c in chunks]
            elif key == "completion_ids":
                chunks = [torch.nn.functional.pad(c, (0, width - c.size(1)), value=pad_id) for c in chunks]
            elif key in _RIGHT_PADDED:
                chunks = [
                    torch.nn.functional.pad(c, (0, width - c.size(1)), value=_RIGHT_PADDED[key])
                    for c in chunks
                ]
            else:
                raise ValueError(f"dynamic_sampling cannot join the batch field {key!r}")
            out[key] = torch.cat(chunks)
        mask = out["completion_mask"] if "tool_mask" not in out else out["completion_mask"] * out["tool_mask"]
        out["num_items_in_batch"] = mask.sum()
        out["advantages"] = torch.zeros(mask.size(0), device=mask.device)  # replaced by the caller
        return out, rewards

    # ------------------------------------------------------------------ loss

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            **{k: inputs.get(k) for k in _MM_KEYS},
        )
        args = self.args
        mode = "train" if self.model.training else "eval"
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        num_items = None
        if self.loss_type in GLOBAL_TOKEN_LOSSES:  # token mean over the whole generation batch, all processes
            num_items = inputs["num_items_in_batch"] / self.accelerator.num_processes
            if mode == "train":
                num_items = num_items * accumulation / args.steps_per_generation
        old = inputs.get("old_per_token_logps")
        sampling = inputs.get("sampling_per_token_logps")  # r1's sampler or vLLM
        importance = None
        if (self.use_vllm and self.vllm_importance_sampling_correction) or _opt(
            args, "sampler_importance_sampling_correction", False
        ):
            if sampling is None:
                raise RuntimeError(
                    "rollout correction is on but this batch has no sampler log-probs (generated by generate(), "
                    "not r1's sampler or vLLM)"
                )
            # π_old: the trainer's forward at sampling time; without one (μ = 1) the weights have not moved since
            importance = rollout_correction(
                per_token_logps.detach() if old is None else old,
                sampling,
                mask,
                self.vllm_importance_sampling_mode,
                self.vllm_importance_sampling_clip_min,
                self.vllm_importance_sampling_clip_max,
            )
        entropy_pool = None
        if self.top_entropy_quantile < 1.0 and self.accelerator.num_processes > 1:
            # the quantile is over every process's tokens; -1e9 pads (entropies are >= 0)
            local = entropies[mask.bool()].detach().float()
            pool = self.accelerator.gather(self.accelerator.pad_across_processes(local, dim=0, pad_index=-1e9))
            entropy_pool = pool[pool != -1e9]
        entropy_coef = None
        if self._entropy_bonus_enabled:  # the coefficient of the last optimizer step, for every micro-batch
            entropy_coef = applied_entropy_coef(
                self.entropy_coef, self._last_world_entropy, args.entropy_target, self.use_adaptive_entropy
            )
        loss, metrics = grpo_loss(
            per_token_logps,
            old,
            inputs.get("ref_per_token_logps") if self.beta != 0.0 else None,
            inputs["advantages"],
            mask,
            epsilon=self.epsilon_low,
            epsilon_high=self.epsilon_high,
            beta=self.beta,
            loss_type=self.loss_type,
            max_completion_length=self.max_completion_length,
            num_items=num_items,
            accumulation=accumulation,
            entropies=entropies,
            importance_weights=importance,
            importance_sampling_level=self.importance_sampling_level,
            delta=args.delta,
            sapo_temperature_pos=args.sapo_temperature_pos,
            sapo_temperature_neg=args.sapo_temperature_neg,
            vespo_k_pos=args.vespo_k_pos,
            vespo_lambda_pos=args.vespo_lambda_pos,
            vespo_k_neg=args.vespo_k_neg,
            vespo_lambda_neg=args.vespo_lambda_neg,
            use_bias_correction_kl=args.use_bias_correction_kl,
            top_entropy_quantile=self.top_entropy_quantile,
            entropy_pool=entropy_pool,
            off_policy_mask_threshold=self.off_policy_mask_threshold,
            sampling_per_token_logps=sampling,
            entropy_coef=entropy_coef,
        )
        if self.aux_loss_enabled and aux_loss is not None:
            loss = loss + self.router_aux_loss_coef * aux_loss / accumulation
        if entropy_coef is not None and mode == "train":
            if self.use_adaptive_entropy:
                # Skywork-OR1: the coefficient follows the entropy of each optimizer step's tokens, all processes
                stats = torch.stack([metrics["bonus_entropy"] * metrics["bonus_tokens"], metrics["bonus_tokens"]])
                window = self._entropy_window_stats
                self._entropy_window_stats = stats if window is None else window + stats
                if self.accelerator.sync_gradients:
                    total = self.accelerator.reduce(self._entropy_window_stats, reduction="sum")
                    world = (total[0] / total[1].clamp(min=1.0)).item()
                    self.entropy_coef = adaptive_entropy_coef(
                        self.entropy_coef,
                        world,
                        target=args.entropy_target,
                        delta=args.entropy_coef_delta,
                        coef_min=args.entropy_coef_min,
                        coef_max=args.entropy_coef_max,
                    )
                    self._last_world_entropy = world
                    self._entropy_window_stats = None
            if self.accelerator.sync_gradients:
                self._metrics[mode]["entropy_coef"].append(self.entropy_coef)
        if sampling is not None:
            metrics.update(rollout_mismatch(per_token_logps, sampling, mask))
        self._log_loss_metrics(mode, metrics)
        return loss

    def _log_loss_metrics(self, mode: str, metrics: dict[str, torch.Tensor]) -> None:
        """`grpo_loss`'s metrics over all processes, under TRL's names where TRL has them: token-weighted means,
        except `*_min`/`*_max` (the extremes over processes) and `policy_loss` (the mean over processes)."""
        n = metrics["num_tokens"].float()
        internal = ("num_tokens", "bonus_entropy", "bonus_tokens", "policy_loss")
        extremes = [k for k in metrics if k.endswith(("_min", "/min", "_max", "/max"))]
        means = [k for k in metrics if k not in internal and k not in extremes]
        local = torch.stack([metrics[k].float() * n for k in means] + [n])
        total = self.accelerator.reduce(local, reduction="sum")
        count = total[-1].clamp(min=1.0)
        for i, k in enumerate(means):
            self._metrics[mode][k].append((total[i] / count).item())
        if extremes:
            gathered = self.accelerator.gather(torch.stack([metrics[k].float() for k in extremes])[None])
            for i, k in enumerate(extremes):
                col = gathered.view(-1, len(extremes))[:, i]
                self._metrics[mode][k].append((col.min() if k.endswith("min") else col.max()).item())
        if "policy_loss" in metrics:
            policy = self.accelerator.gather(metrics["policy_loss"].float().reshape(1))
            self._metrics[mode]["policy_loss"].append(policy.nanmean().item())
