"""Every TRL internal r1cli's GRPO code relies on, in one place, checked against TRL `TRL_CHECKED`: a TRL upgrade
is this file's work (re-read each item below against the new `trl/trainer/grpo_trainer.py`; the test
`test_trl_internals_are_where_r1cli_expects_them` fails when a listed method or attribute is gone).

Private hooks of `trl.GRPOTrainer` that `R1GRPOTrainer` overrides (`HOOKS`), with the 1.16 contract it relies on:
- `_tokenize_prompts(prompts) -> (prompt_ids, images, multimodal_fields)`.
- `_generate(prompts) -> (prompt_ids, completion_ids, tool_mask, completions, logprobs, ...)` (`rollout_record`).
- `_generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
  -> (completion_ids, logprobs)`: token lists, one row per prompt row (prompts arrive repeated G times).
- `_get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, batch_size,
  compute_entropy, compute_aux_loss, **MULTIMODAL_KEYS) -> ([B, C] log-probs, [B, C] entropies | None, aux | None)`,
  zero at padding; called with `self.model` under no_grad for π_old right after sampling when
  `computes_old_logps` holds, then for the reference, then with grad from `_compute_loss`.
- `_calculate_rewards(inputs, prompts, completions, completion_ids_list) -> [N, F]` gathered over processes, NaN
  where a function returned None; called once per `_generate_and_score_completions`.
- `_generate_and_score_completions(inputs) -> batch`: this process's rows, keys `prompt_ids`, `prompt_mask`,
  `completion_ids`, `completion_mask`, `advantages`, `num_items_in_batch` and the optional ones of
  `RIGHT_PADDED`/`MULTIMODAL_KEYS`. It computes the advantages inline, with no hook to skip or replace that step;
  `R1GRPOTrainer` overwrites `batch["advantages"]` with r1cli's (TRL's also feed its own `_logs`, unused by r1cli).
- `_compute_loss(model, inputs) -> loss`, called by `compute_loss` once per micro-batch.
- transformers' `Trainer._save_checkpoint(model, trial)` and `_load_optimizer_and_scheduler(checkpoint)` (extended
  for the dynamic-sampling state), `_get_output_dir(trial)` (`checkpoint_dir`).

Private attributes read or written, only through the functions below: `_metrics` (per-step metric lists, averaged
and cleared by `GRPOTrainer.log`), `_logs` (completion log buffers), `_tokenizer`, `_dist` (FSDP parameter
gathering around generation), `_entropy_bonus_enabled`, `_last_world_entropy`, `_entropy_window_stats` (the
adaptive entropy controller's state, which TRL saves with checkpoints).

Public-looking but undocumented trainer attributes set in `GRPOTrainer.__init__` are read by name (`temperature`,
`top_p`, `top_k`, `min_p`, `repetition_penalty`, `max_completion_length`, `eos_token_ids`, `num_generations`,
`num_generations_eval`, `num_iterations`, `pad_to_multiple_of`, `use_vllm`, `use_transformers_continuous_batching`,
`reward_weights`, `reward_func_names`, `scale_rewards`, `multi_objective_aggregation`, `beta`, `ref_model`,
`vllm_importance_sampling_{correction,mode,clip_min,clip_max}`, `aux_loss_enabled`, `router_aux_loss_coef`,
`entropy_coef`, `use_adaptive_entropy`, the loss options of `grpo_loss_options`, and transformers'
`current_gradient_accumulation_steps`); so are `trl.models.{prepare_deepspeed, prepare_fsdp,
unwrap_model_for_generation}`, `trl.trainer.utils.{add_fused_lm_head, disable_dropout_in_model}` and
`trl.trainer.callbacks.SyncRefModelCallback` (`adopt_ref_model` replays TRL's reference set-up).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

TRL_CHECKED = "1.16.0"

HOOKS = (
    "_tokenize_prompts",
    "_generate",
    "_generate_single_turn",
    "_get_per_token_logps_and_entropies",
    "_calculate_rewards",
    "_generate_and_score_completions",
    "_compute_loss",
    "_save_checkpoint",
    "_load_optimizer_and_scheduler",
)
# set in GRPOTrainer.__init__ (checked on a built trainer)
ATTRIBUTES = (
    "_metrics",
    "_logs",
    "_tokenizer",
    "_dist",
    "_entropy_bonus_enabled",
    "_last_world_entropy",
    "_entropy_window_stats",
)

# keyword arguments of `_get_per_token_logps_and_entropies` that carry multimodal inputs (and batch keys of the same
# name)
MULTIMODAL_KEYS = (
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
# the [B, C] fields of a scored batch besides completion_ids, with the value TRL pads them with on the right
RIGHT_PADDED = {
    "completion_mask": 0,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
    "tool_mask": 1,
}


@dataclass
class HookHandoff:
    """What one overridden hook leaves for a later one within a single `_generate_and_score_completions` call:
    TRL's control flow passes neither value on, so it waits here (the trainer's only such side channel)."""

    rewards_per_func: torch.Tensor | None = None  # [N, F]: `_calculate_rewards` -> `R1GRPOTrainer._score_once`
    sampler_old_logps: torch.Tensor | None = None  # [B, C]: `_generate_single_turn` -> the π_old forward

    def clear(self) -> None:
        self.rewards_per_func = self.sampler_old_logps = None


def metrics(trainer: Any, mode: str = "train") -> dict[str, list[float]]:
    """TRL's metric lists of `mode` ("train"/"eval"): append a value per step, `GRPOTrainer.log` averages them."""
    return trainer._metrics[mode]


def save_log_buffers(trainer: Any) -> tuple[Any, Any]:
    """A copy of TRL's metric and completion-log buffers, for `restore_log_buffers`."""
    return copy.deepcopy(trainer._metrics), copy.deepcopy(trainer._logs)


def restore_log_buffers(trainer: Any, saved: tuple[Any, Any]) -> None:
    trainer._metrics, trainer._logs = saved


def tokenizer(trainer: Any) -> Any:
    return trainer._tokenizer


def completion_mask(batch: dict[str, Any]) -> torch.Tensor:
    """[B, C] the tokens a scored batch trains on: the completion mask, times the tool mask when tools ran."""
    mask = batch["completion_mask"]
    return mask if "tool_mask" not in batch else mask * batch["tool_mask"]


def rollout_record(generated: tuple) -> dict[str, list]:
    """`_generate`'s result -> the preflight check's record of one generation batch."""
    prompt_ids, completion_ids, _, completions = generated[:4]
    return {"prompt_ids": list(prompt_ids), "completion_ids": list(completion_ids), "completions": list(completions)}


def trl_token_logps(trainer: Any) -> Callable[..., tuple]:
    """TRL's own `_get_per_token_logps_and_entropies` bound to `trainer` (one fused-head forward, chunked)."""
    from trl import GRPOTrainer

    return functools.partial(GRPOTrainer._get_per_token_logps_and_entropies, trainer)


def computes_old_logps(trainer: Any) -> bool:
    """TRL computes π_old by a forward right after sampling (outside vLLM) exactly when generation and optimizer
    steps are misaligned: `num_iterations > 1`, or a generation batch that spans optimizer steps."""
    generate_every = trainer.args.steps_per_generation * trainer.num_iterations
    return trainer.args.gradient_accumulation_steps % generate_every != 0


def plain_sampling(trainer: Any, images: Any, multimodal_fields: Any) -> bool:
    """True when TRL would sample with `generate()` and options r1's sampler has: transformers backend, text only,
    no repetition penalty or extra generation kwargs, temperature > 0."""
    return (
        not trainer.use_vllm
        and not trainer.use_transformers_continuous_batching
        and images is None
        and not multimodal_fields
        and trainer.temperature > 0
        and (trainer.repetition_penalty in (None, 1.0))
        and not trainer.args.generation_kwargs
    )


def sampling_options(trainer: Any) -> dict[str, Any]:
    """TRL's sampling settings under the keyword names of `r1cli.generation.generate`."""
    return dict(
        temperature=trainer.temperature,
        top_p=trainer.top_p if trainer.top_p is not None else 1.0,
        top_k=trainer.top_k or 0,
        min_p=trainer.min_p or 0.0,
        max_new_tokens=trainer.max_completion_length,
        eos_ids=trainer.eos_token_ids,
    )


@contextlib.contextmanager
def generation_model(trainer: Any) -> Iterator[Any]:
    """The policy unwrapped for sampling, under no_grad, as TRL's transformers path prepares it (DeepSpeed/FSDP)."""
    from trl.models import unwrap_model_for_generation

    with (
        unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as unwrapped_model,
        torch.no_grad(),
        trainer._dist.summon_full_params(trainer.model_wrapped, recurse=False),
    ):
        yield unwrapped_model


# the loss options TRL 1.16's `_compute_loss` reads from `args`; it reads the others from the trainer itself
LOSS_OPTIONS_ON_ARGS = ("delta", "use_bias_correction_kl", "entropy_target", "entropy_coef_delta")


@contextlib.contextmanager
def loss_options(trainer: Any, **opts: Any) -> Iterator[None]:
    """Set loss options where TRL's `_compute_loss` reads them and put the previous values back afterwards (the
    tests and `bench/grpo_step.py` run r1cli's and TRL's loss under the same options)."""
    saved = []
    for k, v in opts.items():
        owner = trainer.args if k in LOSS_OPTIONS_ON_ARGS else trainer
        saved.append((owner, k, getattr(owner, k)))
        setattr(owner, k, v)
    try:
        yield
    finally:
        for owner, k, v in reversed(saved):
            setattr(owner, k, v)


def grpo_loss_options(trainer: Any) -> dict[str, Any]:
    """TRL's loss options, read where TRL 1.16's `_compute_loss` reads them (trainer or args), under the keyword
    names of `r1cli.grpo.loss.grpo_loss`."""
    args = trainer.args
    return dict(
        epsilon=trainer.epsilon_low,
        epsilon_high=trainer.epsilon_high,
        beta=trainer.beta,
        loss_type=trainer.loss_type,
        max_completion_length=trainer.max_completion_length,
        importance_sampling_level=trainer.importance_sampling_level,
        delta=args.delta,
        sapo_temperature_pos=args.sapo_temperature_pos,
        sapo_temperature_neg=args.sapo_temperature_neg,
        vespo_k_pos=args.vespo_k_pos,
        vespo_lambda_pos=args.vespo_lambda_pos,
        vespo_k_neg=args.vespo_k_neg,
        vespo_lambda_neg=args.vespo_lambda_neg,
        use_bias_correction_kl=args.use_bias_correction_kl,
        top_entropy_quantile=trainer.top_entropy_quantile,
        off_policy_mask_threshold=trainer.off_policy_mask_threshold,
    )


def entropy_bonus_enabled(trainer: Any) -> bool:
    return trainer._entropy_bonus_enabled


def last_world_entropy(trainer: Any) -> float:
    """The entropy of the previous optimizer step's tokens (all processes), +inf before the first."""
    return trainer._last_world_entropy


def add_entropy_window(trainer: Any, stats: torch.Tensor) -> torch.Tensor:
    """Accumulate [entropy × tokens, tokens] over the micro-batches of this optimizer step; the running sum."""
    window = trainer._entropy_window_stats
    trainer._entropy_window_stats = stats if window is None else window + stats
    return trainer._entropy_window_stats


def close_entropy_window(trainer: Any, world_entropy: float) -> None:
    trainer._last_world_entropy = world_entropy
    trainer._entropy_window_stats = None


def checkpoint_dir(trainer: Any, trial: Any) -> str:
    """The folder `Trainer._save_checkpoint` has just written for the current step."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return os.path.join(trainer._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}")


@contextlib.contextmanager
def without_trl_reference(args: Any) -> Iterator[None]:
    """`GRPOTrainer.__init__` with beta 0 and no reference sync: TRL loads no reference of its own (it would reload
    it from `config._name_or_path`, which fails for a model built in memory); `adopt_ref_model` installs one."""
    beta, sync = args.beta, args.sync_ref_model
    args.beta, args.sync_ref_model = 0.0, False
    try:
        yield
    finally:
        args.beta, args.sync_ref_model = beta, sync


def adopt_ref_model(trainer: Any, ref_model: torch.nn.Module) -> None:
    """Install an in-memory frozen reference as TRL 1.16's `__init__` installs the one it loads; `trainer` was
    built `without_trl_reference`."""
    from trl.models import prepare_deepspeed, prepare_fsdp
    from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

    trainer.beta = trainer.args.beta
    ref_model.eval()
    ref_model.requires_grad_(False)
    if trainer.args.disable_dropout:
        disable_dropout_in_model(ref_model)
    add_fused_lm_head(ref_model, temperature=trainer.temperature)
    if trainer.is_deepspeed_enabled:
        ref_model = prepare_deepspeed(ref_model, trainer.accelerator)
    elif trainer.is_fsdp_enabled:
        ref_model = prepare_fsdp(ref_model, trainer.accelerator)
    else:
        ref_model = trainer.accelerator.prepare_model(ref_model, evaluation_mode=True)
    trainer.ref_model = ref_model
    if trainer.args.sync_ref_model:
        from trl.trainer.callbacks import SyncRefModelCallback

        trainer.add_callback(SyncRefModelCallback(ref_model=trainer.ref_model, accelerator=trainer.accelerator))
