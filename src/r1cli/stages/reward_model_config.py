"""`RewardModelConfig`: the config of `r1 reward-model`, a `trl.RewardConfig` (every TRL option is a key) plus
r1cli's field groups (`r1cli.config_groups`: the model loader for the backbone, full or LoRA, and the input) and
the stage's data fields.

Defaults that differ from TRL's: `max_length: 512`, `learning_rate: 1e-4`, `num_train_epochs: 1`,
`per_device_train_batch_size: 16`, `logging_steps: 10`, `save_strategy: steps` every 200 steps (for `--resume`),
`report_to: none`, `bf16` only on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from trl import RewardConfig

from r1cli.config_groups import InputData, ModelArgs, TrainerOverrides, field_help


@field_help(
    input="Preference pairs: an r1cli run (`r1 data --task preference`), a local HF dataset folder, a JSONL/Parquet "
    "file or a hub id, with prompt/chosen/rejected columns (see `columns`). Null = the built-in synthetic preference "
    "set (r1cli.tasks.preference), generated here.",
    columns="Column mapping {ours: theirs} for prompt, chosen, rejected, e.g. {prompt: question}.",
)
@dataclass
class RewardModelConfig(InputData, ModelArgs, TrainerOverrides, RewardConfig):
    """`r1 reward-model`: train a sequence-classification reward model on prompt/chosen/rejected pairs."""

    eval_input: Optional[str] = field(
        default=None,
        metadata={
            "help": "Held-out pairs for the pairwise accuracy (same forms as input). Null = the built-in test split "
            "(built-in input) or `eval_fraction` of the input rows, held out by seed."
        },
    )
    train_size: int = field(default=2000, metadata={"help": "Built-in preference pairs to train on."})
    eval_size: int = field(default=200, metadata={"help": "Built-in held-out pairs (test split)."})
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of a dataset input held out when eval_input is null (0-0.5)."}
    )
    data_params: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Knobs of the built-in preference set, e.g. {harmful_share: 0.2, think_share: 0.7}."},
    )
    output: Optional[str] = field(default=None, metadata={"help": "Output run folder (reward model in <output>/model)."})
    # --- TRL options whose r1cli default differs
    max_length: Optional[int] = field(default=512, metadata={"help": "Drop pairs longer than N tokens."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the pairs."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Pairs per device per step."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    save_strategy: str = field(default="steps", metadata={"help": "When to save checkpoints (steps/epoch/no)."})
    save_steps: float = field(default=200, metadata={"help": "Checkpoint every N steps (for --resume)."})
    save_total_limit: Optional[int] = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    seed: int = field(default=0, metadata={"help": "Seed for data, head initialisation and order."})

    def __post_init__(self) -> None:
        self.prepare_trainer_args()
        super().__post_init__()
        self._check_model_args()
        if self.load_in_4bit:
            raise ValueError(
                "r1 reward-model trains full or LoRA weights and saves a merged model: drop load_in_4bit"
            )
        if self.train_size <= 0 or self.eval_size <= 0:
            raise ValueError(f"train_size and eval_size must be > 0, got {self.train_size}, {self.eval_size}")
        if not 0.0 < self.eval_fraction <= 0.5:
            raise ValueError(f"eval_fraction must be in (0, 0.5], got {self.eval_fraction}")
        bad = sorted(set(self.columns) - {"prompt", "chosen", "rejected"})
        if bad:
            raise ValueError(f"columns maps prompt, chosen, rejected; unknown key(s) {', '.join(bad)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
