"""`SFTStageConfig`: the options of r1's SFT (`r1 coldstart`'s `ColdstartConfig` is exactly this; `r1 distill`'s
`DistillConfig` adds the teacher's), TRL's `SFTConfig` plus r1cli's field groups (see `r1cli.config_groups`) and
the SFT fields.

`output_dir` (TRL's checkpoint folder) is derived from `output`: `<output>/checkpoints`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from trl import SFTConfig

from r1cli.config_groups import InputData, ModelArgs, Rendering, TrainerOverrides, field_help


@field_help(
    input="Training data: an r1cli dataset run, a save_to_disk folder, a JSONL/Parquet file or a hub id. Columns: "
    "messages, or prompt/completion, or prompt/reasoning/answer.",
    template="How prompts are rendered, as `r1 eval`/`r1 rl` render them: auto = the chat template when the "
    "tokenizer has one (no instruction on built-in task rows), else r1-zero.",
    instruction="Appended to each user prompt (R1's \\boxed{} instruction, as eval appends); null: none.",
    think_prefix="Prefill `<think>\\n` after the generation prompt (match `r1 eval`).",
)
@dataclass
class SFTStageConfig(Rendering, InputData, ModelArgs, TrainerOverrides, SFTConfig):
    """`r1 coldstart`: SFT on long, readable chain-of-thought data (R1's cold start)."""

    output: Optional[str] = field(default=None, metadata={"help": "Output run folder (model in <output>/model)."})
    answer_format: Literal["tag", "boxed"] = field(
        default="tag",
        metadata={
            "help": "For prompt/reasoning/answer rows: summary as <answer>N</answer> (R1-Zero shape) or "
            "'The answer is \\boxed{N}.' (R1 chat shape)."
        },
    )
    max_samples: Optional[int] = field(default=None, metadata={"help": "Use at most N training rows."})
    save_merged: bool = field(
        default=False, metadata={"help": "With LoRA: also write a merged full model to <output>/merged."}
    )
    # --- TRL options whose r1cli default differs
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate (tiny: 1e-3; 1.5B LoRA: 1e-4)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the data."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Rows per device per step."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "LR schedule."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Share of steps used for LR warmup."})
    logging_steps: float = field(default=5, metadata={"help": "Log every N steps."})
    save_strategy: str = field(default="steps", metadata={"help": "When to save checkpoints (steps/epoch/no)."})
    save_steps: float = field(default=50, metadata={"help": "Checkpoint every N steps (for --resume)."})
    save_total_limit: Optional[int] = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    max_length: Optional[int] = field(default=1024, metadata={"help": "Truncate sequences to N tokens."})
    packing: bool = field(default=False, metadata={"help": "Pack sequences (off: R1 cold-start rows are long)."})
    seed: int = field(default=0, metadata={"help": "Random seed."})

    def __post_init__(self) -> None:
        self.prepare_trainer_args()
        super().__post_init__()
        self._check_model_args()
        if self.max_samples is not None and self.max_samples <= 0:
            raise ValueError(f"max_samples must be > 0, got {self.max_samples}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
