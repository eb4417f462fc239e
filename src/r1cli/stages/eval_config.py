"""`EvalConfig`: the config of `r1 eval` (a plain dataclass; see `r1cli.config_groups` for how configs are built)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from r1cli.config_groups import ModelArgs, Rendering, check, field_help


@field_help(
    think_prefix="Prefill `<think>\\n` after the generation prompt (R1-style chat templates that already end with it "
    "are detected either way; the prefix is put back before format scoring).",
)
@dataclass
class EvalConfig(Rendering, ModelArgs):
    """`r1 eval`: R1's evaluation protocol."""

    benchmarks: list[str] = field(
        default_factory=lambda: ["arith"],
        metadata={"help": "Benchmarks: built-in task names, math500, gsm8k, aime24, a hub id or a JSONL/Parquet path."},
    )
    columns: dict[str, str] = field(
        default_factory=dict, metadata={"help": "Column mapping for custom benchmarks, e.g. {prompt: question}."}
    )
    task_params: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Difficulty knobs of built-in task benchmarks, e.g. {max_terms: 4}."}
    )
    k: Optional[int] = field(
        default=None, metadata={"help": "Samples per problem; null = the protocol's (64 for aime24, else 4)."}
    )
    limit: Optional[int] = field(default=None, metadata={"help": "Evaluate only the first N problems."})
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature (paper: 0.6)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling (paper: 0.95)."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Generation budget per completion."})
    batch_size: Optional[int] = field(
        default=None, metadata={"help": "Rows decoded at once; null = the engine's fixed default (r1cli.generation.default_batch_size)."}
    )
    backend: Literal["hf", "vllm"] = field(default="hf", metadata={"help": "Generation backend."})
    oracle: bool = field(default=False, metadata={"help": "Grade the reference solutions instead of a model."})
    output: Optional[str] = field(default=None, metadata={"help": "Output run folder."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})

    def __post_init__(self) -> None:
        self._check_model_args()
        check(self.k is None or self.k >= 1, f"k must be >= 1, got {self.k}")
        check(self.limit is None or self.limit > 0, f"limit must be > 0, got {self.limit}")
        check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        check(self.max_new_tokens > 0, f"max_new_tokens must be > 0, got {self.max_new_tokens}")
        check(self.batch_size is None or self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        check(len(self.benchmarks) > 0, "benchmarks is empty: pass --benchmark NAME")
