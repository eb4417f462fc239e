"""`DistillConfig`: the config of `r1 distill`, an `SFTStageConfig` (the student's SFT, every TRL option; `r1
coldstart`'s ColdstartConfig is exactly that) plus the teacher's fields (see `r1cli.config_groups`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from r1cli.decontam import DEFAULT_EVAL_SETS
from r1cli.filters import ReadabilityFilters
from r1cli.sft_config import SFTStageConfig


@dataclass
class DistillConfig(SFTStageConfig):
    """`r1 distill`: a teacher writes reasoning traces for a prompt set; the student (`model`) is fine-tuned on them.

    `input` is the prompt set (a built-in task name, or a dataset with `prompt` and optional `answer`), or with
    `train_only` a trace dataset (a `r1 distill --generate-only` run, or any SFT dataset). The teacher's sampling
    fields (`num_traces`, `temperature`, ...) have no effect with `train_only`.
    """

    teacher: Optional[str] = field(
        default=None,
        metadata={
            "help": "Teacher: a preset, an r1cli run, a HF folder, a hub id, or an OpenAI-compatible endpoint URL "
            "(http(s)://host:port/v1)."
        },
    )
    generate_only: bool = field(default=False, metadata={"help": "Only write the trace dataset (<output>/data)."})
    train_only: bool = field(
        default=False, metadata={"help": "Only train the student on an existing trace dataset (input)."}
    )
    task_params: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Difficulty knobs when input is a built-in task, e.g. {max_terms: 4}."}
    )
    num_prompts: Optional[int] = field(
        default=None,
        metadata={"help": "Prompts given to the teacher: a built-in task generates this many (null: 1000); a "
                  "dataset uses its first N (null: all)."},
    )
    num_traces: int = field(default=4, metadata={"help": "Traces the teacher writes per prompt (n)."})
    max_per_prompt: Optional[int] = field(
        default=None, metadata={"help": "Keep at most this many distinct traces per prompt (null: all that pass)."}
    )
    temperature: float = field(default=0.6, metadata={"help": "Teacher sampling temperature (0 = greedy)."})
    top_p: float = field(default=0.95, metadata={"help": "Teacher nucleus sampling."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Teacher generation budget per trace."})
    keep_truncated: bool = field(
        default=False, metadata={"help": "Keep traces that hit max_new_tokens (off: they are cut mid-thought)."}
    )
    keep_ungraded: bool = field(
        default=True,
        metadata={"help": "Keep traces of prompts without a gold answer (filtered for readability only)."},
    )
    filters: ReadabilityFilters = field(
        default_factory=ReadabilityFilters, metadata={"help": "R1's readability filters (r1cli.filters)."}
    )
    decontaminate: bool = field(
        default=True,
        metadata={"help": "Drop prompts that share an 8-gram with an eval set (built-in test splits: exact match)."},
    )
    decontaminate_against: list[str] = field(
        default_factory=lambda: list(DEFAULT_EVAL_SETS),
        metadata={"help": "Eval sets for decontamination (names, files or hub ids `r1 eval` accepts)."},
    )
    teacher_backend: Literal["hf", "vllm"] = field(
        default="hf", metadata={"help": "Engine for a local teacher: hf (r1cli's engine) or vllm (GPU, optional)."}
    )
    teacher_batch_size: Optional[int] = field(
        default=None, metadata={"help": "Rows the local teacher decodes at once (null: the engine's fixed default, r1cli.generation.default_batch_size)."}
    )
    teacher_model_name: Optional[str] = field(
        default=None,
        metadata={"help": "Model name sent to an endpoint teacher (null: the server's first listed model)."},
    )
    teacher_concurrency: int = field(default=8, metadata={"help": "Parallel requests to an endpoint teacher."})
    teacher_max_retries: int = field(
        default=4, metadata={"help": "Retries per request to an endpoint teacher (backoff on errors, 429, 5xx)."}
    )
    teacher_timeout_s: float = field(default=300.0, metadata={"help": "Timeout of one endpoint request (s)."})
    teacher_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the endpoint's API key (if any)."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.filters, dict):
            self.filters = ReadabilityFilters(**self.filters)
        super().__post_init__()
        if self.generate_only and self.train_only:
            raise ValueError("generate_only and train_only exclude each other: set at most one")
        if self.num_prompts is not None and self.num_prompts <= 0:
            raise ValueError(f"num_prompts must be > 0, got {self.num_prompts}")
        if self.num_traces < 1:
            raise ValueError(f"num_traces must be >= 1, got {self.num_traces}")
        if self.max_per_prompt is not None and self.max_per_prompt < 1:
            raise ValueError(f"max_per_prompt must be >= 1 (or null), got {self.max_per_prompt}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.teacher_batch_size is not None and self.teacher_batch_size < 1:
            raise ValueError(f"teacher_batch_size must be >= 1 (or null), got {self.teacher_batch_size}")
        if self.teacher_concurrency < 1:
            raise ValueError(f"teacher_concurrency must be >= 1, got {self.teacher_concurrency}")
        if self.teacher_max_retries < 0:
            raise ValueError(f"teacher_max_retries must be >= 0, got {self.teacher_max_retries}")
        if self.teacher_timeout_s <= 0:
            raise ValueError(f"teacher_timeout_s must be > 0, got {self.teacher_timeout_s}")
