"""`RejectSampleConfig`: the config of `r1 reject-sample` (a plain dataclass: no trainer underneath; see
`r1cli.config_groups` for how configs are built)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from r1cli.config_groups import ModelArgs, PromptSource, Rendering, check, field_help
from r1cli.decontam import DEFAULT_EVAL_SETS
from r1cli.filters import ReadabilityFilters
from r1cli.judge import JudgeConfig


@field_help(
    input="Prompt dataset (prompt + answer columns; rows without an answer are non-reasoning rows): an r1cli run, a "
    "HF dataset folder, a JSONL/Parquet file, a hub id, or a built-in task name. Null = the built-in `task`.",
    task="Built-in task whose train prompts are sampled when input is null (arith).",
    columns="Column mapping of the input {ours: theirs}, e.g. {prompt: question, answer: final}.",
    template="Prompt template; auto = chat without instruction for built-in tasks, chat with the instruction "
    "otherwise (r1-zero without a chat template). Same rendering as r1 eval / rl.",
)
@dataclass
class RejectSampleConfig(Rendering, PromptSource, ModelArgs):
    """`r1 reject-sample`: sample n completions per prompt, keep at most m correct and readable ones."""

    num_prompts: Optional[int] = field(
        default=None,
        metadata={"help": "Prompts: generated for a built-in task (null = 1000), or the first N rows of the input "
                  "(null = all)."},
    )
    n: int = field(default=8, metadata={"help": "Completions sampled per prompt."})
    max_keep: int = field(
        default=4, metadata={"help": "Most completions kept per prompt (m; the first that pass, deduplicated)."}
    )
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature (R1's protocol: 0.6)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Generation budget per completion."})
    batch_size: Optional[int] = field(
        default=None,
        metadata={"help": "Rows decoded at once; null = one shard's rows (shard_size x n, at most 512), a fixed "
                  "number so that a resumed shard decodes in the same batch shapes."},
    )
    drop_truncated: bool = field(
        default=True, metadata={"help": "Reject completions cut by max_new_tokens (finish_reason length)."}
    )
    filters: ReadabilityFilters = field(
        default_factory=ReadabilityFilters, metadata={"help": "R1's readability filters (r1cli.filters)."}
    )
    judge: JudgeConfig = field(
        default_factory=JudgeConfig,
        metadata={"help": "Generative judge for rows whose gold answer rules cannot check (r1cli.judge)."},
    )
    passthrough: bool = field(
        default=True,
        metadata={"help": "Copy non-reasoning rows (no answer, but a `completion`) to the output as they are."},
    )
    decontaminate: bool = field(
        default=True, metadata={"help": "Drop prompts sharing an 8-gram with the eval sets (r1cli.decontam)."}
    )
    eval_sets: list[str] = field(
        default_factory=lambda: list(DEFAULT_EVAL_SETS),
        metadata={"help": "Eval sets for decontamination (benchmark names, built-in tasks, files)."},
    )
    shard_size: int = field(
        default=64, metadata={"help": "Prompts per shard; each shard is written atomically (the resume unit)."}
    )
    backend: Literal["hf", "vllm"] = field(default="hf", metadata={"help": "Generation backend."})
    output: Optional[str] = field(default=None, metadata={"help": "Output run folder (dataset in <output>/data)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed (and the built-in task's prompt seed)."})

    def __post_init__(self) -> None:
        self._check_model_args()
        check(self.n >= 1, f"n must be >= 1, got {self.n}")
        check(self.max_keep >= 1, f"max_keep must be >= 1, got {self.max_keep}")
        check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        check(self.max_new_tokens > 0, f"max_new_tokens must be > 0, got {self.max_new_tokens}")
        check(self.batch_size is None or self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        check(self.num_prompts is None or self.num_prompts > 0, f"num_prompts must be > 0, got {self.num_prompts}")
        check(self.shard_size >= 1, f"shard_size must be >= 1, got {self.shard_size}")
        if self.decontaminate:
            check(len(self.eval_sets) > 0, "decontaminate needs eval_sets (or set decontaminate: false)")
