"""`MergeConfig`: the config of `r1 merge` (a plain dataclass; see `r1cli.config_groups` for how configs are built)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from r1cli.config_groups import check


@dataclass
class MergeConfig:
    """`r1 merge`: merge a LoRA/QLoRA adapter into its full-precision base (a plain HF model folder)."""

    model: Optional[str] = field(
        default=None, metadata={"help": "The adapter: an r1cli run holding one, or a PEFT adapter folder."}
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        default="auto", metadata={"help": "dtype of the merged weights."}
    )
    output: Optional[str] = field(default=None, metadata={"help": "Output run folder (model in <output>/model)."})
    seed: int = field(default=0, metadata={"help": "Unused; accepted for symmetry with the other stages."})

    def __post_init__(self) -> None:
        check(bool(self.model), "r1 merge needs the adapter: pass --model RUN_OR_ADAPTER_FOLDER")
