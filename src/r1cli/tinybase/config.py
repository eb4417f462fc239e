"""What determines a tiny base build: `TinyBaseConfig` (its hash, with the seed and `TINYBASE_VERSION`, is the
cache key), the presets and `preset_config`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

TINYBASE_VERSION = "1"


@dataclass(frozen=True)
class TinyBaseConfig:
    """Everything that determines a tiny base build (its hash is the cache key)."""

    vocab_size: int = field(default=384, metadata={"help": "BPE vocabulary size, special tokens included."})
    hidden_size: int = field(default=192, metadata={"help": "Model width."})
    intermediate_size: int = field(default=512, metadata={"help": "MLP width."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Transformer layers."})
    num_attention_heads: int = field(default=4, metadata={"help": "Query heads."})
    num_key_value_heads: int = field(default=2, metadata={"help": "Key/value heads (GQA)."})
    max_position_embeddings: int = field(default=512, metadata={"help": "Longest sequence."})
    rope_theta: float = field(default=10000.0, metadata={"help": "RoPE base."})
    task: str = field(default="arith", metadata={"help": "Built-in task of the pretraining corpus."})
    task_params: tuple[tuple[str, Any], ...] = field(
        default=(("max_terms", 8), ("min_terms", 6)),
        metadata={"help": "The task's params (sorted items); spelled out so they are part of the cache key."},
    )
    detailed_share: float = field(
        default=0.25, metadata={"help": "Share of detailed-style completions at the end of pretraining (the style prior)."}
    )
    detailed_share_start: float = field(
        default=0.5,
        metadata={"help": "Share of detailed-style completions at step 0, annealed linearly to detailed_share over "
                  "the first 75% of steps (more worked traces early teach the skill; the late mix sets the prior)."},
    )
    mixed_share: float = field(
        default=0.0,
        metadata={"help": "Opt-in: share of the detailed-style rows written in the task's `mixed` style instead "
                  "(the same solution with words of another language; the language-mixing finding). 0: off."},
    )
    micro_batches: int = field(
        default=4, metadata={"help": "Each step's rows are sorted by length and run as this many accumulated "
                             "micro-batches (little padding, and every step still sees the corpus mix)."}
    )
    train_steps: int = field(default=800, metadata={"help": "Optimizer steps (the budget is in steps, not seconds)."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per step."})
    lr: float = field(default=3e-3, metadata={"help": "Peak AdamW learning rate."})
    warmup_steps: int = field(default=40, metadata={"help": "Linear warmup steps."})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "Cosine decay floor, as a share of lr."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay."})
    tokenizer_rows: int = field(default=3000, metadata={"help": "Task rows used to train the BPE."})
    threads: int = field(default=2, metadata={"help": "torch threads while training."})

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        for name in ("detailed_share", "detailed_share_start", "mixed_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 1 <= self.micro_batches <= self.batch_size:
            raise ValueError(f"micro_batches must be in 1..batch_size, got {self.micro_batches}")
        if self.train_steps < 1:
            raise ValueError(f"train_steps must be >= 1, got {self.train_steps}")

    def fields(self) -> dict[str, Any]:
        """The config as a dict; the opt-in `mixed_share` is left out when off, so the cache key and the build
        manifest of every preset without it are those from before the field existed."""
        out = dataclasses.asdict(self)
        if out["mixed_share"] == 0.0:
            del out["mixed_share"]
        return out

    def key(self, seed: int) -> str:
        fields = self.fields()
        blob = json.dumps({"version": TINYBASE_VERSION, "seed": seed, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


PRESETS: dict[str, TinyBaseConfig] = {
    "tiny": TinyBaseConfig(),
    "tiny-test": TinyBaseConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        train_steps=40,
        batch_size=32,
        warmup_steps=5,
        tokenizer_rows=500,
    ),
    # the language-mixing finding: `tiny` with half of its detailed solutions written with Chinese words
    "tiny-mix": TinyBaseConfig(task_params=(("max_terms", 8), ("min_terms", 6), ("mixed_style", True)), mixed_share=0.5),
    # finding (c) redone: `tiny` with 30% of its rows, of both styles, in their mixed version (arith's
    # `mixed_marker`: a Chinese opening line before the style head), so mixing is a choice apart from the style
    "tiny-lang": TinyBaseConfig(task_params=(("max_terms", 8), ("min_terms", 6), ("mixed_marker", True)),
                                mixed_share=0.3),
}


def preset_config(preset: str, train_steps: int | None = None, **overrides: Any) -> TinyBaseConfig:
    from r1cli.errors import ConfigError

    if preset not in PRESETS:
        raise ConfigError(f"unknown tiny preset {preset!r}", hint=f"presets: {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    if train_steps is not None:
        overrides["train_steps"] = int(train_steps)
    if "task_params" in overrides and isinstance(overrides["task_params"], dict):
        overrides["task_params"] = tuple(sorted(overrides["task_params"].items()))
    try:
        return dataclasses.replace(cfg, **overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"tiny base config: {e}") from None
