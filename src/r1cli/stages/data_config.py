"""`DataConfig`: the config of `r1 data` (a plain dataclass; see `r1cli.config_groups` for how configs are built)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from r1cli.config_groups import check
from r1cli.decontam import DEFAULT_EVAL_SETS


@dataclass
class DataConfig:
    """`r1 data`: write a built-in task dataset."""

    task: Literal["arith", "addition", "countdown", "linear", "general", "preference"] = field(
        default="arith",
        metadata={
            "help": "Built-in task (arith, addition, countdown, linear), or `general` (general prompts for `r1 align`) or "
            "`preference` (prompt/chosen/rejected pairs for `r1 reward-model`), see r1cli.tasks.preference."
        },
    )
    split: Literal["train", "validation", "test"] = field(
        default="train", metadata={"help": "train, validation (for tuning) or test (for reporting): disjoint splits."}
    )
    n: Optional[int] = field(default=None, metadata={"help": "Number of rows (tasks: 1000 when unset; --from: all)."})
    seed: int = field(default=0, metadata={"help": "Generator seed (the same seed gives the same rows)."})
    params: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Difficulty knobs of the task (see `r1cli.tasks`), e.g. {max_terms: 4}."}
    )
    cold_start: bool = field(
        default=False, metadata={"help": "Write readable worked solutions (prompt/completion) for `r1 coldstart`."}
    )
    answer_format: Literal["tag", "boxed"] = field(
        default="tag",
        metadata={"help": "With cold_start: the solution's summary as <answer>N</answer> (R1-Zero shape, the embedded "
                  "base's) or 'The answer is \\boxed{N}.' (R1 chat shape, for a chat model given R1's instruction)."},
    )
    output: Optional[str] = field(default=None, metadata={"help": "Output run folder (dataset in <output>/data)."})
    source: Optional[str] = field(
        default=None,
        metadata={
            "help": "Real prompts instead of a task (`--from`): gsm8k or math (their train splits), or a "
            "JSONL/Parquet file, dataset folder or hub id; answers normalised, decontaminated against the eval sets. "
            "`n` caps the rows (all when --n is not given)."
        },
    )
    columns: dict[str, str] = field(
        default_factory=dict, metadata={"help": "With source: column mapping {prompt: question, answer: final}."}
    )
    decontaminate_against: list[str] = field(
        default_factory=lambda: list(DEFAULT_EVAL_SETS),
        metadata={"help": "With source: eval sets whose prompts (exact or a shared 8-gram) are dropped."},
    )

    def __post_init__(self) -> None:
        check(self.n is None or self.n > 0, f"n must be > 0, got {self.n}")
        check(self.source is None or not self.cold_start,
               "cold_start writes worked solutions of a built-in task: drop it with source (--from)")
        from r1cli.tasks import get_task

        if self.task in ("general", "preference"):
            from r1cli.tasks.preference import make_params

            make_params(self.params)  # bad knobs fail here, before any output
        else:
            get_task(self.task, **self.params)  # unknown or out-of-range difficulty knobs fail here, before any output
        check(
            not (self.cold_start and self.task in ("general", "preference")),
            f"cold_start writes worked solutions of a reasoning task; drop it for task {self.task}",
        )
