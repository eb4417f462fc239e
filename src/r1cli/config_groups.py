"""The field groups every stage config is composed of, each field declared once here.

- `ModelArgs`: how to load the model (every stage that loads one).
- `TrainerOverrides`: the defaults r1cli changes in TRL's trainer configs.
- `InputData`: the stage's input artifact (`--input`) and its column mapping.
- `PromptSource` (an `InputData`): prompts from that input or from a built-in task.
- `Rendering`: how a prompt becomes the model's text (template, instruction, `<think>` prefill), the same for
  `r1 eval`, `rl`, `align`, `reject-sample`, `coldstart` and `distill`.

A stage config (`r1cli.stages.<stage>_config`) lists the groups it has in one order, then its TRL base:

    class XConfig(Rendering, PromptSource | InputData, ModelArgs, TrainerOverrides, <TRL config>)

Dataclass fields are collected from the right, so `config.yaml` and `--print-config` read TRL's options, the
model, the input, the rendering, then the stage's own fields; where two declare one field, the one further left
wins (`ModelArgs.trust_remote_code` and `TrainerOverrides`' defaults over TRL's). A stage whose field means a
little more than the group says gives its own help text with `field_help`. Validation lives in each config's
`__post_init__`; messages say what to change. Nothing here imports torch or TRL.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, TypeVar

from r1cli.prompts import R1_INSTRUCTION

C = TypeVar("C", bound=type)


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def field_help(**texts: str) -> Callable[[C], C]:
    """Class decorator (above `@dataclass`): give inherited fields this stage's help text (`--print-config`)."""

    def apply(cls: C) -> C:
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        for name, text in texts.items():
            f = copy.copy(fields[name])  # the base class keeps its own Field
            f.metadata = types.MappingProxyType({**f.metadata, "help": text})
            fields[name] = f
        return cls

    return apply


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
        check(bool(self.model), "model is empty: set --model (e.g. tiny, a run folder, a hub id)")
        check(0.0 < self.gpu_memory_utilization <= 1.0,
              f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        check(self.lora_r > 0, f"lora_r must be > 0, got {self.lora_r}")
        check(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        check(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.load_in_4bit and not self.use_peft:
            raise ValueError("load_in_4bit trains only through LoRA: also set use_peft: true")


@dataclass
class InputData:
    """The stage's input artifact (`--input`) and how its columns map to the ones the stage reads (mixin)."""

    input: Optional[str] = field(
        default=None,
        metadata={"help": "Input artifact: an r1cli run folder, a dataset file or folder, or a hub id."},
    )
    columns: dict[str, str] = field(
        default_factory=dict, metadata={"help": "Column mapping {ours: theirs}, e.g. {prompt: question}."}
    )


@field_help(
    input="Prompt dataset: an r1cli run folder (`r1 data`), a local HF dataset folder or JSONL/Parquet file, a hub "
    "id, or a built-in task name (arith, countdown, linear). Null = the built-in `task`."
)
@dataclass
class PromptSource(InputData):
    """Prompts from the input dataset, or generated by a built-in task when `input` is null (mixin)."""

    task: Optional[str] = field(
        default=None,
        metadata={
            "help": "Built-in task to generate prompts for when `input` is null (default arith), or the task whose "
            "answer checker the accuracy reward uses when the input rows carry no `task` column."
        },
    )
    task_params: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Difficulty knobs of the built-in task, e.g. {max_terms: 4}."}
    )


@dataclass
class Rendering:
    """How a prompt is rendered for the model, one path for every stage (`r1cli.prompts.render_prompt`) (mixin)."""

    template: Literal["chat", "r1-zero", "plain", "auto"] = field(
        default="auto",
        metadata={
            "help": "Prompt template; auto = chat without instruction for built-in tasks, chat with the "
            "instruction for math benchmarks (r1-zero when the tokenizer has no chat template)."
        },
    )
    instruction: Optional[str] = field(
        default=R1_INSTRUCTION, metadata={"help": "Appended to the user turn (null to disable)."}
    )
    think_prefix: bool = field(default=False, metadata={"help": "Prefill `<think>\\n` after the generation prompt."})

    def render(self, question: str, *, builtin_task: bool, tokenizer: Any) -> str:
        """The text the model is conditioned on: `r1cli.prompts.render_prompt` with this config's template,
        instruction and prefill."""
        from r1cli.prompts import render_prompt

        return render_prompt(question, builtin_task=builtin_task, tokenizer=tokenizer, template=self.template,
                             instruction=self.instruction, think_prefix=self.think_prefix)


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

    def prepare_trainer_args(self) -> None:
        """Before TRL's `__post_init__`: checkpoints under `<output>/checkpoints`, device-dependent precision."""
        if getattr(self, "output", None):
            self.output_dir = f"{self.output}/checkpoints"
        self.resolve_precision()

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
