"""Every shipped recipe loads through its stage's config (unknown keys or bad values would fail here), and its
rewards build."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1cli.commands.common import STAGES, config_class
from r1cli.config_loader import load_config

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*/*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_loads(path):
    stage = path.stem.replace("_", "-")
    if stage not in STAGES:
        pytest.skip(f"{path.name} is not a stage recipe")
    cls = config_class(stage)
    overrides = {"output": "/tmp/never-written"}
    cfg = load_config(cls, path, overrides=overrides)
    rewards = getattr(cfg, "rewards", None)
    if rewards:
        from r1cli.rewards import build_rewards

        funcs, weights = build_rewards(rewards)
        assert len(funcs) == len(weights) == len(rewards)


def test_there_are_recipes():
    assert len(RECIPES) >= 4


def test_the_command_table_and_the_stages_agree():
    """Every command has its stage module and, beside it, its `<stage>_config` with the config class; a command that
    offers --dry-run / --preflight runs a stage that defines `dry_run` / `preflight` (the driver does not check)."""
    import importlib

    from r1cli.commands import TABLE
    from r1cli.commands.common import DRY_RUN, PREFLIGHT, stage_module

    assert set(TABLE) == set(STAGES)
    for stage, (_doc, options) in TABLE.items():
        assert config_class(stage).__name__ == STAGES[stage][0]
        mod = importlib.import_module(stage_module(stage))
        assert callable(mod.run)
        assert hasattr(mod, "dry_run") == (DRY_RUN[0] in options), stage
        assert hasattr(mod, "preflight") == (PREFLIGHT in options), stage
