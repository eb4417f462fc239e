"""Built-in general prompts and synthetic preference pairs (r1cli.tasks.preference) and `r1 data` writing them."""

from __future__ import annotations

from collections import Counter

import pytest

from r1cli.errors import ConfigError
from r1cli.tasks.preference import FLAWS, HARMFUL_FLAW, general_rows, preference_rows


def test_deterministic_by_seed_and_splits_disjoint():
    a = preference_rows("train", 50, seed=3)
    assert a == preference_rows("train", 50, seed=3)
    assert a != preference_rows("train", 50, seed=4)
    train = {r["prompt"] for r in general_rows("train", 400)}
    test = {r["prompt"] for r in general_rows("test", 60)}
    assert len(train) == 400 and len(test) == 60 and not train & test
    # pairs and general prompts share the prompt stream: same prompts for the same split and seed
    assert [r["prompt"] for r in preference_rows("test", 20)] == [r["prompt"] for r in general_rows("test", 20)]


def test_pairs_have_one_flaw_each_and_refusals_win_on_harmful_requests():
    rows = preference_rows("train", 400, seed=0)
    flaws = Counter(r["flaw"] for r in rows)
    assert set(flaws) == set(FLAWS) | {HARMFUL_FLAW}
    for r in rows:
        assert r["kind"] == "general" and r["chosen"] != r["rejected"]
        if r["category"] == "harmful":
            assert r["flaw"] == HARMFUL_FLAW
            assert "can't" in r["chosen"] or "won't" in r["chosen"]
        else:
            assert r["chosen"].endswith(".")  # a one-sentence summary after the reasoning
        if r["flaw"] == "rambling":
            assert len(r["rejected"]) > len(r["chosen"]) + 100
        if r["flaw"] == "unformatted":
            assert "</think>" not in r["rejected"] and "<think>" in r["rejected"]
    think = sum("<think>" in r["chosen"] for r in rows) / len(rows)
    assert 0.55 < think < 0.85  # think_share 0.7: both forms are present


def test_params_are_validated():
    only = preference_rows("train", 40, seed=0, flaws=["wrong"], harmful_share=0.0)
    assert {r["flaw"] for r in only} == {"wrong"}
    with pytest.raises(ConfigError, match="unknown param"):
        general_rows("train", 5, colour="red")
    with pytest.raises(ConfigError, match="flaws"):
        preference_rows("train", 5, flaws=["boring"])
    with pytest.raises(ConfigError, match="split"):
        general_rows("dev", 5)


def test_r1_data_writes_general_and_preference_sets(tmp_path):
    from datasets import load_from_disk

    from r1cli.commands.common import execute
    from r1cli.config_loader import build
    from r1cli.stages import data
    from r1cli.stages.data_config import DataConfig

    for task, cols in (("general", {"prompt", "kind", "category", "reference"}),
                       ("preference", {"prompt", "chosen", "rejected", "kind", "category", "flaw"})):
        cfg = build(DataConfig, {"task": task, "split": "test", "n": 12, "output": str(tmp_path / task)})
        man = execute("data", data, cfg, "dataset", resume=False, overwrite=False, as_json=True)
        assert man["metrics"]["rows"] == 12
        ds = load_from_disk(str(tmp_path / task / "data"))
        assert set(ds.column_names) == cols and set(ds["kind"]) == {"general"}
    with pytest.raises(ConfigError, match="cold_start"):
        build(DataConfig, {"task": "general", "cold_start": True})
