"""`RLConfig`: the config of `r1 rl`, a `trl.GRPOConfig` (every TRL option is a key) plus r1cli's model loader
(`ModelArgs`) and the stage's own fields (input, task, rewards, template, dynamic sampling, rollout speed-ups).

Defaults that differ from TRL's, and why:
- `loss_type: grpo` (TRL: dapo): the paper's aggregation; the others stay one key away.
- `gradient_checkpointing: false` (TRL: true): on the small models this toolkit trains on CPU, recomputing
  activations costs a third of the step and saves memory nobody needs; turn it on for large models.
- `bf16: null` resolves to true only on a GPU (TRL: always true unless fp16), so CPU runs stay float32.
- `use_bias_correction_kl: false` (TRL: true): the paper's KL term, without DeepSeek-V3.2's importance weight.
- `logging_steps: 1`, `report_to: none`, `seed: 0`.

`AlignConfig` (the all-scenario RL stage) lives in `r1cli.stages.align_config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from trl import GRPOConfig

from r1cli.configs import ModelArgs, TrainerOverrides
from r1cli.prompts import R1_INSTRUCTION

# TRL options that change the loss or the advantages in ways r1cli.grpo.loss does not implement: rejected up front
# instead of silently ignored. (name, the value that means "off", what to do)
UNSUPPORTED_TRL_OPTIONS: tuple[tuple[str, Any, str], ...] = (
    (
        "importance_sampling_level",
        "token",
        "r1cli computes token-level ratios only (GSPO's 'sequence' is not here)",
    ),
    (
        "multi_objective_aggregation",
        "sum_then_normalize",
        "rewards are summed (with weights), then normalised",
    ),
    ("off_policy_mask_threshold", None, "off-policy sequence masking is not implemented"),
    ("top_entropy_quantile", 1.0, "entropy-based token masking is not implemented"),
    ("entropy_coef", 0.0, "no entropy bonus in the paper's objective"),
    ("use_adaptive_entropy", False, "no entropy bonus in the paper's objective"),
    ("delta", None, "two-sided clipping is not implemented"),
    ("use_bias_correction_kl", False, "the KL is the paper's k3 estimator, without importance correction"),
)


@dataclass
class RLConfig(TrainerOverrides, GRPOConfig, ModelArgs):
    """`r1 rl`: GRPO with rule-based rewards (R1-Zero, and R1's reasoning-oriented RL stage)."""

    input: Optional[str] = field(
        default=None,
        metadata={
            "help": "Prompt dataset: an r1cli run folder (`r1 data`), a local HF dataset folder or JSONL/Parquet file, "
            "a hub id, or a built-in task name (arith, countdown, linear). Null = the built-in `task`."
        },
    )
    task: Optional[str] = field(
        default=None,
        metadata={
            "help": "Built-in task to generate prompts for when `input` is null (default arith), or the task whose "
            "answer checker the accuracy reward uses when the input rows carry no `task` column."
        },
    )
    columns: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Column mapping of the input dataset {ours: theirs}, e.g. {prompt: question}."},
    )
    task_params: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Difficulty knobs of the built-in task, e.g. {max_terms: 4}."}
    )
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
    template: Literal["chat", "r1-zero", "plain", "auto"] = field(
        default="auto",
        metadata={
            "help": "Prompt template: chat (tokenizer's chat template), r1-zero (the paper's Table 1), plain, or "
            "auto = the task's own for built-in tasks, else chat."
        },
    )
    instruction: Optional[str] = field(
        default=R1_INSTRUCTION,
        metadata={
            "help": "Appended to the user turn for chat/plain templates (null to disable); match `r1 eval`."
        },
    )
    think_prefix: bool = field(
        default=False, metadata={"help": "Prefill `<think>\\n` after the generation prompt (chat template)."}
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
    # --- TRL options whose r1cli default or type differs (see the module docstring)
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = field(
        default="grpo",
        metadata={
            "help": "Loss aggregation: grpo (the paper: mean over each completion's tokens, then over completions), "
            "bnpo (mean over the batch's tokens), dr_grpo (token sum / (B × max_completion_length)), dapo "
            "(token-level over the whole generation batch)."
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
            "help": "Not supported (TRL's DeepSeek-V3.2 KL correction); the paper's KL is used as written."
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
        if self.loss_type not in ("grpo", "bnpo", "dr_grpo", "dapo"):
            raise ValueError(f"loss_type must be grpo, bnpo, dr_grpo or dapo, got {self.loss_type!r}")
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
        for name, off, why in UNSUPPORTED_TRL_OPTIONS:
            if getattr(self, name) != off:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not supported by r1 rl ({why}); set it to {off!r}"
                )
        self._check_rewards()

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
