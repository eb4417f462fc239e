"""Rule-based rewards: a registry of name -> reward function, built only when a recipe selects it.

A reward function has the open-r1 / TRL signature `fn(completions, **columns) -> list[float | None]`: completions
are strings or TRL's conversational form (lists of `{"role", "content"}` messages), dataset columns arrive as
keyword lists (gold answers in `answer`), and None means "cannot judge" (TRL leaves it out of means). The
registered name is the function's `__name__`, which TRL uses as the metric name in its logs.

A recipe selects rewards as a list of `{name, weight, params}` (`RewardSpec`); each reward's params are its own
small dataclass (validated on build: an unknown name or param is a `ConfigError` that lists the valid ones).

| name | module | what it scores |
|---|---|---|
| accuracy | accuracy | 1/0 by math-verify against `answer` (None: gold unparseable) |
| format | format | 1/0: the strict R1-Zero shape or the R1 chat shape |
| tag_count | format | 0.25 per well-placed think/answer tag |
| language_consistency | language | share of chain-of-thought words in the target language (paper §2.3.3) |
| soft_overlong | length | DAPO's soft overlong punishment (0 … -1) |
| cosine_length | length | correctness-dependent cosine length scaling |
| repetition | repetition | n-gram repetition penalty (0 … max_penalty) |
| reasoning_steps | steps | share of the target number of explicit reasoning steps |
| code | code | fraction of test cases passed by the completion's Python, run in a sandbox |
| helpfulness | reward_model | a reward model's (normalised) score of prompt + final summary; None off its kinds |
| harmlessness | reward_model | a reward model's (normalised) score of prompt + whole response; None off its kinds |

The reward-model rewards load their model on first call, not when built.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from r1cli.errors import ConfigError

RewardFn = Callable[..., list]

# name -> "module:factory"; each factory module defines a params dataclass and `build_<name>(params)`.
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "accuracy": ("r1cli.rewards.accuracy", "AccuracyParams", "build_accuracy"),
    "format": ("r1cli.rewards.format", "FormatParams", "build_format"),
    "tag_count": ("r1cli.rewards.format", "TagCountParams", "build_tag_count"),
    "language_consistency": ("r1cli.rewards.language", "LanguageParams", "build_language_consistency"),
    "soft_overlong": ("r1cli.rewards.length", "SoftOverlongParams", "build_soft_overlong"),
    "cosine_length": ("r1cli.rewards.length", "CosineLengthParams", "build_cosine_length"),
    "repetition": ("r1cli.rewards.repetition", "RepetitionParams", "build_repetition"),
    "reasoning_steps": ("r1cli.rewards.steps", "ReasoningStepsParams", "build_reasoning_steps"),
    "code": ("r1cli.rewards.code", "CodeParams", "build_code"),
    "helpfulness": ("r1cli.rewards.reward_model", "RewardModelParams", "build_helpfulness"),
    "harmlessness": ("r1cli.rewards.reward_model", "RewardModelParams", "build_harmlessness"),
}


def available() -> list[str]:
    """The registered reward names."""
    return sorted(_REGISTRY)


@dataclass
class RewardSpec:
    """One selected reward in a recipe."""

    name: str = field(metadata={"help": "Registered reward name: " + ", ".join(sorted(_REGISTRY)) + "."})
    weight: float = field(
        default=1.0, metadata={"help": "Weight of this reward in the sum TRL advantages use."}
    )
    params: dict[str, Any] = field(default_factory=dict, metadata={"help": "The reward's own parameters."})

    def __post_init__(self) -> None:
        if self.name not in _REGISTRY:
            raise ConfigError(
                f"unknown reward {self.name!r}",
                hint="valid rewards: " + ", ".join(available()),
            )
        if not isinstance(self.weight, (int, float)) or isinstance(self.weight, bool):
            raise ConfigError(f"reward {self.name!r}: weight must be a number, got {self.weight!r}")
        if not isinstance(self.params, dict):
            raise ConfigError(f"reward {self.name!r}: params must be a mapping, got {self.params!r}")

    @classmethod
    def parse(cls, obj: Any) -> RewardSpec:
        """From a recipe entry: a name (`accuracy`), or a mapping `{name, weight, params}`."""
        if isinstance(obj, RewardSpec):
            return obj
        if isinstance(obj, str):
            return cls(obj)
        if isinstance(obj, dict):
            unknown = set(obj) - {"name", "weight", "params"}
            if unknown or "name" not in obj:
                raise ConfigError(
                    f"reward entry {obj!r}: expected keys name, weight, params",
                    hint="e.g. {name: accuracy, weight: 1.0, params: {}}",
                )
            weight = obj.get("weight", 1.0)
            try:
                weight = float(weight)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"reward {obj['name']!r}: weight must be a number, got {weight!r}"
                ) from None
            return cls(str(obj["name"]), weight, dict(obj.get("params") or {}))
        raise ConfigError(f"reward entry {obj!r} is neither a name nor a mapping")


def params_class(name: str) -> type:
    """The params dataclass of a registered reward (imports its module)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown reward {name!r}", hint="valid rewards: " + ", ".join(available()))
    mod, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(mod), cls)


def get_reward(name: str, **params: Any) -> RewardFn:
    """Build the reward function registered as `name` with its params (ConfigError on a bad name or param).

    >>> fn = get_reward("accuracy")
    >>> fn.__name__, fn(["<think>\\n1+1\\n</think>\\n<answer>\\n2\\n</answer>"], answer=["2"])
    ('accuracy', [1.0])
    """
    from r1cli.config_loader import build

    cls = params_class(name)
    p = build(cls, params, prefix=f"rewards.{name}.params.")
    mod, _, factory = _REGISTRY[name]
    fn = getattr(importlib.import_module(mod), factory)(p)
    return _named(fn, name)


def _named(fn: RewardFn, name: str) -> RewardFn:
    @functools.wraps(fn)
    def reward(completions: Sequence[Any], **kwargs: Any) -> list:
        return fn(completions, **kwargs)

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


def build_rewards(specs: Sequence[Any]) -> tuple[list[RewardFn], list[float]]:
    """The selected rewards, built in order, and their weights (for `GRPOConfig.reward_weights`).
    Entries may be RewardSpec, names or `{name, weight, params}` mappings. A name selected twice is an error
    (TRL would log both under one name)."""
    parsed = [RewardSpec.parse(s) for s in specs]
    if not parsed:
        raise ConfigError("no rewards selected", hint="valid rewards: " + ", ".join(available()))
    names = [s.name for s in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"reward(s) selected twice: {', '.join(dup)}", hint="merge them into one entry")
    funcs = [get_reward(s.name, **s.params) for s in parsed]
    return funcs, [float(s.weight) for s in parsed]


__all__ = ["RewardSpec", "available", "build_rewards", "get_reward", "params_class"]
