"""`AlignConfig`: the config of `r1 align` (paper §2.3.4, RL for all scenarios), a `GRPOStageConfig` (every GRPO and
TRL option, the model loader; `r1 rl`'s RLConfig is exactly that) plus a prompt mixture and rewards per row kind.

- `mixture`: prompt sources, each `{input, kind, columns, n, weight, task_params, instruction}`; `input` is a
  built-in task (arith, countdown, linear: kind reasoning), `general` (the built-in general prompts), an r1cli
  run, a local dataset or a hub id. A row's kind is the source's `kind`, else the dataset's `kind` column, else
  `reasoning`.
  `input` (`r1 align --input X`) replaces the mixture with the one source X (with `columns`, `task_params`).
- `rewards_by_kind`: `{kind: [reward specs]}`; each reward judges only rows of the kinds that list it (other rows
  get None, which TRL and r1cli's advantages leave out). A reward listed under several kinds must be the same spec.
- `reward_model` / `reward_model_normalize` / `reward_model_device`: defaults filled into the `helpfulness` and
  `harmlessness` params that do not set `model` / `normalize` / `device`.

`rewards` (the GRPO options' flat list, whose weights become TRL's `reward_weights`) is derived from `rewards_by_kind`
and written to config.yaml; setting it by hand to anything else is an error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from r1cli.grpo.config import GRPOStageConfig

RM_REWARDS = ("helpfulness", "harmlessness")
SOURCE_KEYS = ("input", "kind", "columns", "n", "weight", "task_params", "instruction")
GENERAL = "general"  # the built-in general prompt source (r1cli.tasks.preference)


def _default_mixture() -> list[dict[str, Any]]:
    return [{"input": "arith", "kind": "reasoning", "n": 2000}, {"input": GENERAL, "kind": "general", "n": 500}]


def _default_rewards_by_kind() -> dict[str, list[Any]]:
    return {
        "reasoning": [{"name": "accuracy"}, {"name": "format", "weight": 0.2}],
        "general": [{"name": "helpfulness"}, {"name": "harmlessness", "weight": 0.5}],
    }


@dataclass
class AlignConfig(GRPOStageConfig):
    """`r1 align`: GRPO on a mixture of reasoning and general prompts, each row scored by the rewards of its kind."""

    mixture: list[dict[str, Any]] = field(
        default_factory=_default_mixture,
        metadata={
            "help": "Prompt sources: [{input, kind, columns, n, weight, task_params, instruction}]. input: a built-in "
            "task, `general`, a run/dataset folder, a JSONL/Parquet file or a hub id; kind: the rows' kind (null: "
            "the dataset's `kind` column, else reasoning); n: rows taken (built-in: generated; null = train_size "
            "or all); weight: mixture weight (when any source sets one, rows are resampled so each source holds weight/sum of "
            "the total; a source without one weighs 1; with none set, every row once); "
            "instruction: appended to the user turn (null = none for built-in and general sources, else the "
            "global `instruction`)."
        },
    )
    rewards_by_kind: dict[str, list[Any]] = field(
        default_factory=_default_rewards_by_kind,
        metadata={"help": "Rewards per row kind: {kind: [name | {name, weight, params}]}."},
    )
    reward_model: Optional[str] = field(
        default=None,
        metadata={
            "help": "Default reward model of helpfulness/harmlessness (an `r1 reward-model` run, a folder or a hub "
            "id) when their params do not name one."
        },
    )
    reward_model_normalize: Literal["zscore", "sigmoid", "none"] = field(
        default="zscore", metadata={"help": "Default normalisation of reward-model scores (zscore, sigmoid, none)."}
    )
    reward_model_device: str = field(
        default="auto", metadata={"help": "Default device of the reward models (auto = the policy's: cuda if any)."}
    )
    rewards: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "Derived from rewards_by_kind (the flat list TRL sees); leave it unset."},
    )

    def __post_init__(self) -> None:
        if self.input:  # `r1 align --input X`: one source, kinds from its `kind` column
            self.mixture = [{"input": self.input, "columns": dict(self.columns), "task_params": dict(self.task_params)}]
        derived = self.flat_rewards()
        if self.rewards and [_plain(r) for r in self.rewards] != derived:
            raise ValueError("r1 align takes its rewards from rewards_by_kind: drop `rewards` (it is derived)")
        self.rewards = derived
        self._check_mixture()
        super().__post_init__()

    # ----------------------------------------------------------------------------------------- derived

    def reward_kinds(self) -> dict[str, list[str]]:
        """reward name -> the kinds it judges, in rewards_by_kind order."""
        from r1cli.rewards import RewardSpec

        out: dict[str, list[str]] = {}
        for kind, specs in self._by_kind().items():
            for s in specs:
                out.setdefault(RewardSpec.parse(s).name, []).append(kind)
        return out

    def flat_rewards(self) -> list[dict[str, Any]]:
        """One `{name, weight, params}` per distinct reward (reward-model defaults filled in, `kinds` set)."""
        from r1cli.rewards import RewardSpec

        flat: dict[str, dict[str, Any]] = {}
        for kind, specs in self._by_kind().items():
            if not isinstance(specs, list) or not specs:
                raise ValueError(f"rewards_by_kind.{kind} must be a non-empty list of rewards")
            for s in specs:
                spec = RewardSpec.parse(s)
                entry = {"name": spec.name, "weight": float(spec.weight), "params": copy.deepcopy(spec.params)}
                if spec.name in flat:
                    seen = dict(flat[spec.name], params={k: v for k, v in flat[spec.name]["params"].items()
                                                         if k != "kinds"})
                    if seen != self._with_defaults(entry, None):
                        raise ValueError(
                            f"reward {spec.name!r} is listed under several kinds with different weight or params; "
                            "give it the same spec everywhere"
                        )
                    if spec.name in RM_REWARDS and "kinds" not in spec.params:
                        flat[spec.name]["params"]["kinds"].append(kind)
                    continue
                flat[spec.name] = self._with_defaults(entry, kind)
        return list(flat.values())

    def _with_defaults(self, entry: dict[str, Any], kind: str | None) -> dict[str, Any]:
        if entry["name"] not in RM_REWARDS:
            return entry
        p = entry["params"]
        if self.reward_model and "model" not in p:
            p["model"] = self.reward_model
        p.setdefault("normalize", self.reward_model_normalize)
        p.setdefault("device", self.reward_model_device)
        if kind is not None:
            p.setdefault("kinds", [kind])
        return entry

    def _by_kind(self) -> dict[str, list[Any]]:
        if not isinstance(self.rewards_by_kind, dict) or not self.rewards_by_kind:
            raise ValueError("rewards_by_kind is empty: e.g. {reasoning: [accuracy], general: [helpfulness]}")
        return self.rewards_by_kind

    def _check_mixture(self) -> None:
        if not self.mixture:
            raise ValueError("mixture is empty: list at least one prompt source, e.g. [{input: arith}]")
        for i, src in enumerate(self.mixture):
            if not isinstance(src, dict) or not src.get("input"):
                raise ValueError(f"mixture[{i}] must be a mapping with an `input`, got {src!r}")
            bad = sorted(set(src) - set(SOURCE_KEYS))
            if bad:
                raise ValueError(f"mixture[{i}]: unknown key(s) {', '.join(bad)} (keys: {', '.join(SOURCE_KEYS)})")
            w = src.get("weight", 1.0)
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w <= 0:
                raise ValueError(f"mixture[{i}].weight must be a number > 0, got {w!r}")
            n = src.get("n")
            if n is not None and (not isinstance(n, int) or n <= 0):
                raise ValueError(f"mixture[{i}].n must be a positive integer or null, got {n!r}")
            kind = src.get("kind")
            if kind is not None and kind not in self.rewards_by_kind:
                raise ValueError(
                    f"mixture[{i}] has kind {kind!r}, which rewards_by_kind does not score "
                    f"(kinds: {', '.join(self.rewards_by_kind)})"
                )

    def missing_reward_model(self) -> list[str]:
        """Reward-model rewards without a model (checked when the stage starts, so --print-config still works)."""
        return [r["name"] for r in self.rewards if r["name"] in RM_REWARDS and not r["params"].get("model")]


def _plain(r: Any) -> Any:
    """A reward entry as {name, weight, params} (to compare a dumped `rewards` with the derived one)."""
    from r1cli.rewards import RewardSpec

    s = RewardSpec.parse(r)
    return {"name": s.name, "weight": float(s.weight), "params": s.params}
