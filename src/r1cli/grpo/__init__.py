"""GRPO for r1cli: the maths (`loss`, pure torch) and the thin TRL trainer subclass (`trainer.R1GRPOTrainer`); its
config, `GRPOStageConfig` (`config.py`), is what `r1 rl`'s RLConfig is and `r1 align`'s AlignConfig extends.
Names are imported lazily: `import r1cli.grpo` costs nothing."""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "compute_advantages": "r1cli.grpo.loss",
    "compute_advantages_per_reward": "r1cli.grpo.loss",
    "grpo_loss": "r1cli.grpo.loss",
    "per_token_policy_loss": "r1cli.grpo.loss",
    "aggregate_loss": "r1cli.grpo.loss",
    "rollout_correction": "r1cli.grpo.loss",
    "kl_k3": "r1cli.grpo.loss",
    "zero_variance_groups": "r1cli.grpo.loss",
    "R1GRPOTrainer": "r1cli.grpo.trainer",
}

__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    mod = _NAMES.get(name)
    if mod is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(mod), name)
