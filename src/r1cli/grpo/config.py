"""`GRPOStageConfig`: every option of r1's GRPO stages (`r1 rl`'s `RLConfig` is exactly this; `r1 align`'s
`AlignConfig` adds its prompt mixture), a `trl.GRPOConfig` (every TRL option is a key) plus r1cli's field groups
(`r1cli.config_groups`: the model loader, the prompt source, the rendering) and the stage's own fields (rewards,
dynamic sampling, rollout speed-ups, preflight, held-out eval).

Defaults that differ from TRL's, and why:
- `loss_type: grpo` (TRL: dapo): the paper's aggregation; the others stay one key away.
- `gradient_checkpointing: false` (TRL: true): on the small models this toolkit trains on CPU, recomputing
  activations costs a third of the step and saves memory nobody needs; turn it on for large models.
- `bf16: null` resolves to true only on a GPU (TRL: always true unless fp16), so CPU runs stay float32.
- `use_bias_correction_kl: false` (TRL: true): the paper's KL term, without DeepSeek-V3.2's importance weight.

Every loss option TRL 1.16 has is implemented by `r1cli.grpo.loss` (plus GSPO-token, `importance_sampling_level:
sequence_token`, and `sampler_importance_sampling_correction` for r1's own sampler) and checked here, in
`_check_loss_options`, with a message that says what to change.
- `logging_steps: 1`, `report_to: none`, `seed: 0`.

The stages' own classes live beside them: `r1cli.stages.rl_config`, `r1cli.stages.align_config`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from trl import GRPOConfig

from r1cli.config_groups import ModelArgs, PromptSource, Rendering, TrainerOverrides, field_help
from r1cli.grpo.loss import (
    CLIPPED_LOSSES,
    IMPORTANCE_SAMPLING_LEVELS,
    LOSS_TYPES,
    MULTI_OBJECTIVE_AGGREGATIONS,
    ROLLOUT_CORRECTION_MODES,
)


@field_help(
    columns="Column mapping of the input dataset {ours: theirs}, e.g. {prompt: question}.",
    template="Prompt template: chat (tokenizer's chat template), r1-zero (the paper's Table 1), plain, or auto = the "
    "task's own for built-in tasks, else chat.",
    instruction="Appended to the user turn for chat/plain templates (null to disable); match `r1 eval`.",
    think_prefix="Prefill `<think>\\n` after the generation prompt (chat template).",
)
@dataclass
class GRPOStageConfig(Rendering, PromptSource, ModelArgs, TrainerOverrides, GRPOConfig):
    """`r1 rl`: GRPO with rule-based rewards (R1-Zero, and R1's reasoning-oriented RL stage)."""

    train_size: int = field(
        default=20000,
        metadata={"help": "Prompts generated for a built-in task (ignored with an input dataset)."},
    )
    output: Optional[str] = field(
        default=None, metadata={"help": "Output run folder (trained model in <output>/model)."}
    )
    rewards: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "accuracy"}, {"name": "format"}],
        metadata={
            "help": "Reward functions, each a name or a mapping {name, weight, params} (see `r1cli.rewards`); "
            "the weighted sum is normalised per group. The paper's R1-Zero: accuracy + format."
        },
    )
    dynamic_sampling: bool = field(
        default=False,
        metadata={
            "help": "DAPO dynamic sampling: drop prompt groups whose rewards are all equal (no gradient) and refill "
            "the batch with fresh prompts, up to `max_resample_tries` extra generations per batch."
        },
    )
    max_resample_tries: int = field(
        default=4,
        metadata={
            "help": "Dynamic sampling: extra generation rounds per batch; when they run out, the batch is completed "
            "with zero-variance groups (advantage 0) and the shortfall is logged."
        },
    )
    fast_generation: bool = field(
        default=True,
        metadata={
            "help": "Use r1cli's sampler instead of `generate()` (transformers backend only): finished rows leave the "
            "batch, each distinct prompt is prefilled once for its G samples, and the sampled tokens' log-probs "
            "are kept. Same sampling distribution (temperature, top_k, top_p, min_p)."
        },
    )
    reuse_generation_logprobs: bool = field(
        default=True,
        metadata={
            "help": "With fast_generation and float32 weights, use the log-probs computed while sampling as the "
            "old policy's (needed when num_iterations > 1) instead of a second forward pass."
        },
    )
    length_buckets: bool = field(
        default=True,
        metadata={
            "help": "Score completions in length buckets (rows sorted by length, padding trimmed per bucket) "
            "instead of one forward padded to the longest row. Same log-probs up to float rounding."
        },
    )
    share_prompt_prefix: bool = field(
        default=True,
        metadata={
            "help": "Score each distinct prompt once and let its G completions attend to its KV cache (same "
            "log-probs and gradients as G copies, up to float rounding). Used when the [B, C, vocab] logits fit "
            "`prefix_sharing_max_logits_mb` and gradient checkpointing is off; otherwise length buckets."
        },
    )
    prefix_sharing_max_logits_mb: int = field(
        default=512, metadata={"help": "Memory cap for the logits of the shared-prompt scoring path (MiB)."}
    )
    log_completions_every: int = field(
        default=0,
        metadata={
            "help": "Every N optimizer steps, print a table of `num_completions_to_print` sample completions "
            "(prompt tail, completion, each reward, advantage) on stderr and append every row of the latest "
            "generation batch to `<output>/samples.jsonl`. 0 = off. (TRL's own `log_completions` prints to "
            "stdout and is left off.)"
        },
    )
    log_prompts: bool = field(
        default=False,
        metadata={
            "help": "Append the prompts of each training generation batch to `<output>/prompts.jsonl` "
            "({step, prompts}); a record of the data order, e.g. to check that a resumed run skips and repeats "
            "no prompt."
        },
    )
    preflight_prompts: int = field(
        default=32,
        metadata={
            "help": "Before the first update, sample num_generations completions for this many training prompts "
            "with the run's sampler and rewards, report reward means, flat groups, answers, lengths "
            "(preflight.json, the manifest) and stop if no group has reward variance. 0 = skip. "
            "`r1 rl --preflight` runs only this check."
        },
    )
    preflight_max_zero_std: float = field(
        default=0.8,
        metadata={"help": "Preflight: warn when more than this share of prompt groups have equal rewards."},
    )
    eval_every: int = field(
        default=0,
        metadata={
            "help": "Every N optimizer steps (and before the first), run `r1 eval`'s protocol on the held-out set "
            "`eval_input`: heldout/* in metrics.jsonl and the curves, best step in the manifest. 0 = off."
        },
    )
    eval_input: Optional[str] = field(
        default=None,
        metadata={
            "help": "Held-out set for eval_every, as `r1 eval --benchmark` takes it (arith, gsm8k, math500, a "
            "JSONL file, a hub id). Null = the built-in task the prompts come from, its validation split (tuning and the "
            "best checkpoint read validation; reported numbers read test)."
        },
    )
    eval_limit: int = field(default=200, metadata={"help": "Held-out problems per eval (the first N)."})
    eval_k: int = field(default=4, metadata={"help": "Held-out samples per problem (pass@1 over k, cons@k)."})
    eval_max_new_tokens: Optional[int] = field(
        default=None, metadata={"help": "Held-out generation budget; null = max_completion_length."}
    )
    # --- TRL options whose r1cli default or type differs (see the module docstring)
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"] = field(
        default="grpo",
        metadata={
            "help": "Policy objective and aggregation (equations in r1cli/grpo/loss.py): grpo (the paper: clipped "
            "surrogate, mean over each completion's tokens, then over completions), bnpo (mean over the batch's "
            "tokens), dr_grpo (token sum / (B × max_completion_length)), dapo (token-level over the whole "
            "generation batch), cispo (clipped, detached weight × A × log-prob; cap = epsilon_high), sapo (soft "
            "sigmoid gate instead of the clip), luspo (GSPO scaled by completion length; use "
            "importance_sampling_level: sequence), vespo (Gamma-shaped weight of the sequence ratio)."
        },
    )
    importance_sampling_level: Literal["token", "sequence", "sequence_token"] = field(
        default="token",
        metadata={
            "help": "Importance weight: token (the paper: one ratio per token), sequence (GSPO: the geometric mean "
            "of the completion's token ratios), sequence_token (GSPO-token: the sequence weight's value with each "
            "token's own gradient, so per-token advantages and masks act per token; not in TRL)."
        },
    )
    multi_objective_aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = field(
        default="sum_then_normalize",
        metadata={
            "help": "How several rewards make one advantage: sum_then_normalize (weighted sum, then "
            "`scale_rewards`), normalize_then_sum (GDPO: each reward normalised in its group, the weighted sum "
            "normalised over the batch; `scale_rewards` does not apply; not with dynamic_sampling)."
        },
    )
    vllm_importance_sampling_mode: Literal[
        "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"
    ] = field(
        default="sequence_mask",
        metadata={
            "help": "Rollout correction (sampler ≠ trainer) with vLLM (`vllm_importance_sampling_correction`) or "
            "r1's sampler (`sampler_importance_sampling_correction`): weight π_old/π_sampler per token or per "
            "completion, truncated to [vllm_importance_sampling_clip_min, _clip_max] or set to 0 outside it."
        },
    )
    sampler_importance_sampling_correction: bool = field(
        default=False,
        metadata={
            "help": "Apply the rollout correction of `vllm_importance_sampling_mode` (and its clip bounds) to r1's "
            "own sampler (fast_generation): the policy term is weighted by π_old/π_sampler from the sampler's "
            "log-probs. With reuse_generation_logprobs those log-probs are π_old and the weight is 1. The mismatch "
            "itself is logged either way (mismatch/*)."
        },
    )
    scale_rewards: Literal["group", "batch", "none"] = field(
        default="group",
        metadata={
            "help": "Advantage scaling: group (the paper: divide by the group's std), batch (the batch's std), "
            "none (Dr. GRPO: only subtract the group mean)."
        },
    )
    beta: float = field(
        default=0.0,
        metadata={
            "help": "KL weight (the paper's β, k3 estimator). 0 (as DAPO, Dr. GRPO and TRL) skips the reference "
            "model; > 0 uses it (with LoRA: the adapter-disabled base, no second copy)."
        },
    )
    logging_steps: float = field(default=1, metadata={"help": "Log every N optimizer steps."})
    report_to: Optional[str | list[str]] = field(
        default="none", metadata={"help": "Trackers: none, tensorboard, wandb, trackio (or a list)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed for data order, sampling and initialisation."})
    use_bias_correction_kl: bool = field(
        default=False,
        metadata={
            "help": "Multiply the per-token KL by the importance weight (DeepSeek-V3.2's unbiased KL gradient under "
            "samples from π_old). Off: the paper's KL term as written (TRL's default is on)."
        },
    )

    def __post_init__(self) -> None:
        self._check_model_args()
        if self.output_dir is None and self.output:
            self.output_dir = str(Path(self.output) / "trainer")
        if (  # a dumped config.yaml holds both (TRL derives one from the other): keep it loadable
            self.generation_batch_size is not None
            and self.steps_per_generation is not None
            and self.generation_batch_size
            == self.per_device_train_batch_size
            * int(os.environ.get("WORLD_SIZE", "1"))
            * self.steps_per_generation
        ):
            self.generation_batch_size = None
        self.resolve_precision()  # bf16 only on a GPU; gradient_checkpointing carried to its new name
        super().__post_init__()
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ValueError(f"scale_rewards must be group, batch or none, got {self.scale_rewards!r}")
        if self.num_generations is None or self.num_generations < 2:
            raise ValueError(
                f"num_generations must be >= 2 (a group needs a baseline), got {self.num_generations}"
            )
        if self.log_completions_every < 0:
            raise ValueError(f"log_completions_every must be >= 0 (0 = off), got {self.log_completions_every}")
        if self.max_resample_tries < 0:
            raise ValueError(f"max_resample_tries must be >= 0, got {self.max_resample_tries}")
        if self.train_size <= 0:
            raise ValueError(f"train_size must be > 0, got {self.train_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (GRPO samples its groups), got {self.temperature}")
        if not self.beta >= 0:
            raise ValueError(f"beta (the KL coefficient) must be >= 0, got {self.beta}")
        if self.loss_type == "dr_grpo" and not self.max_completion_length:
            raise ValueError("loss_type dr_grpo needs max_completion_length (its constant normaliser)")
        self._check_loss_options()
        self._check_rewards()
        self._check_preflight_and_eval()

    def _check_preflight_and_eval(self) -> None:
        if self.preflight_prompts < 0:
            raise ValueError(f"preflight_prompts must be >= 0 (0 = skip the check), got {self.preflight_prompts}")
        if not 0.0 <= self.preflight_max_zero_std <= 1.0:
            raise ValueError(
                f"preflight_max_zero_std is a share of prompt groups, in [0, 1], got {self.preflight_max_zero_std}"
            )
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 (0 = no held-out eval), got {self.eval_every}")
        if self.eval_limit < 1:
            raise ValueError(f"eval_limit (held-out problems) must be >= 1, got {self.eval_limit}")
        if self.eval_k < 1:
            raise ValueError(f"eval_k (samples per held-out problem) must be >= 1, got {self.eval_k}")
        if self.eval_max_new_tokens is not None and self.eval_max_new_tokens < 1:
            raise ValueError(
                f"eval_max_new_tokens must be >= 1 (null = max_completion_length), got {self.eval_max_new_tokens}"
            )

    def _check_loss_options(self) -> None:
        """Every option of the loss (`r1cli.grpo.loss`), checked once, before any model is loaded."""
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}")
        if self.importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
            raise ValueError(
                "importance_sampling_level must be token, sequence (GSPO) or sequence_token (GSPO-token), "
                f"got {self.importance_sampling_level!r}"
            )
        if self.multi_objective_aggregation not in MULTI_OBJECTIVE_AGGREGATIONS:
            raise ValueError(
                "multi_objective_aggregation must be sum_then_normalize or normalize_then_sum, "
                f"got {self.multi_objective_aggregation!r}"
            )
        if self.multi_objective_aggregation == "normalize_then_sum" and self.dynamic_sampling:
            raise ValueError(
                "multi_objective_aggregation normalize_then_sum does not combine with dynamic_sampling (the refilled "
                "batch keeps only total rewards); set dynamic_sampling: false or sum_then_normalize"
            )
        eps_high = self.epsilon if self.epsilon_high is None else self.epsilon_high
        if self.loss_type == "cispo" and not (self.epsilon_high is not None and self.epsilon_high >= 1):
            raise ValueError(
                "loss_type cispo caps the importance weight at epsilon_high itself (ε_max, e.g. 5.0), got "
                f"{self.epsilon_high}; set epsilon_high >= 1"
            )
        if self.delta is not None:
            if self.loss_type not in CLIPPED_LOSSES:
                raise ValueError(
                    f"delta (two-sided clipping) applies to the clipped losses ({', '.join(CLIPPED_LOSSES)}), "
                    f"not {self.loss_type}; unset delta"
                )
            if not self.delta > 1 + eps_high:
                raise ValueError(
                    f"delta caps the unclipped ratio and must exceed 1 + epsilon_high = {1 + eps_high:g} "
                    f"(INTELLECT-2 uses 4), got {self.delta}"
                )
        if not (self.sapo_temperature_pos > 0 and self.sapo_temperature_neg > 0):
            raise ValueError(
                "sapo_temperature_pos and sapo_temperature_neg must be > 0, got "
                f"{self.sapo_temperature_pos} and {self.sapo_temperature_neg}"
            )
        ks, lams = (self.vespo_k_pos, self.vespo_k_neg), (self.vespo_lambda_pos, self.vespo_lambda_neg)
        if not (min(ks) >= 0 and min(lams) > 0):
            raise ValueError(
                "vespo_k_pos and vespo_k_neg must be >= 0 and vespo_lambda_pos and vespo_lambda_neg > 0, got "
                f"k = {ks}, λ = {lams}"
            )
        if not 0.0 <= self.top_entropy_quantile <= 1.0:
            raise ValueError(
                "top_entropy_quantile is the share of tokens kept, in [0, 1] (1 = all), "
                f"got {self.top_entropy_quantile}"
            )
        if not math.isfinite(self.entropy_coef):
            raise ValueError(
                f"entropy_coef must be a finite number (0 = no entropy bonus), got {self.entropy_coef}"
            )
        if self.use_adaptive_entropy:
            if not 0 <= self.entropy_coef_min <= self.entropy_coef <= self.entropy_coef_max:
                raise ValueError(
                    "use_adaptive_entropy needs 0 <= entropy_coef_min <= entropy_coef <= entropy_coef_max, got "
                    f"{self.entropy_coef_min} <= {self.entropy_coef} <= {self.entropy_coef_max}"
                )
            if not self.entropy_coef_delta > 0:
                raise ValueError(
                    f"entropy_coef_delta (the adaptive step) must be > 0, got {self.entropy_coef_delta}"
                )
            if not self.entropy_target >= 0:
                raise ValueError(f"entropy_target (nats) must be >= 0, got {self.entropy_target}")
        if self.off_policy_mask_threshold is not None and not self.off_policy_mask_threshold > 0:
            raise ValueError(
                "off_policy_mask_threshold is a mean log-ratio per completion and must be > 0 (e.g. 0.5; "
                f"null = off), got {self.off_policy_mask_threshold}"
            )
        if self.vllm_importance_sampling_mode not in ROLLOUT_CORRECTION_MODES:
            raise ValueError(
                f"vllm_importance_sampling_mode must be one of {', '.join(ROLLOUT_CORRECTION_MODES)}, "
                f"got {self.vllm_importance_sampling_mode!r}"
            )
        corrected = self.sampler_importance_sampling_correction or (
            self.use_vllm and self.vllm_importance_sampling_correction
        )
        token_level = self.vllm_importance_sampling_mode.startswith("token")
        if corrected and self.loss_type == "vespo" and not token_level:
            raise ValueError(
                "loss_type vespo folds token-level rollout weights into its sequence weight; set "
                "vllm_importance_sampling_mode to token_truncate or token_mask"
            )
        if self.sampler_importance_sampling_correction:
            if self.use_vllm:
                raise ValueError(
                    "sampler_importance_sampling_correction is for r1's own sampler; with use_vllm set "
                    "vllm_importance_sampling_correction instead"
                )
            if (
                not self.fast_generation
                or self.use_transformers_continuous_batching
                or self.repetition_penalty not in (None, 1.0)
                or self.generation_kwargs
            ):
                raise ValueError(
                    "sampler_importance_sampling_correction needs r1's sampler, which keeps the log-probs: set "
                    "fast_generation: true, repetition_penalty: 1.0, no generation_kwargs and no continuous batching"
                )
            if (
                self.vllm_importance_sampling_mode.endswith("truncate")
                and self.vllm_importance_sampling_clip_min is None
                and self.vllm_importance_sampling_clip_max is None
            ):
                raise ValueError(
                    "a *_truncate rollout correction needs vllm_importance_sampling_clip_min or _clip_max"
                )

    def _check_rewards(self) -> None:
        """Reward specs are checked here (unknown names or keys fail before any model is loaded); their weights
        become TRL's `reward_weights`."""
        from r1cli.rewards import RewardSpec

        if not self.rewards:
            raise ValueError("rewards is empty: list at least one, e.g. [{name: accuracy}]")
        specs = [RewardSpec.parse(spec) for spec in self.rewards]
        weights = [float(spec.weight) for spec in specs]
        if self.reward_weights is not None and [float(w) for w in self.reward_weights] != weights:
            raise ValueError(
                "give reward weights once, as rewards[i].weight (reward_weights is derived from them)"
            )
        self.reward_weights = weights
