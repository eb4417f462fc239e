"""helpfulness / harmlessness (r1cli.rewards.reward_model) and align's routing: lazy loading, which text the reward
model reads, normalisation, and that rows of the wrong kind never reach a reward."""

from __future__ import annotations

import json
import math

import pytest

from r1cli.rewards import build_rewards, get_reward
from r1cli.rewards.reward_model import STATS_FILE, summary_of
from r1cli.stages.align import route

THINK = "<think>\nStep by step:\na: 1+2=3\n</think>\n"
Q = "Sum up briefly: Mara lives in Oslo. Mara has 4 cats."


@pytest.fixture(scope="module")
def rm_path(tiny_base_path, tmp_path_factory):
    """A one-label sequence-classification model on the tiny-test base (seeded head): a real reward model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("rm")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_base_path, num_labels=1)
    torch.nn.init.normal_(model.score.weight, std=1.0)  # a visible spread of scores
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_base_path).save_pretrained(out)
    return str(out)


def _rm(name, rm_path, **params):
    params = {"model": rm_path, "normalize": "none", "device": "cpu", **params}
    return get_reward(name, **params)


def test_summary_of():
    assert summary_of("<think>\nx\n</think>\nthe answer") == "the answer"
    assert summary_of("<think>\nnever closed") == ""
    assert summary_of("no tags at all") == "no tags at all"


def test_building_loads_nothing(rm_path):
    from r1cli.rewards import reward_model

    fn = _rm("helpfulness", rm_path, batch_size=3)
    assert fn.__name__ == "helpfulness" and "scorer" not in fn.state
    before = dict(reward_model._SCORERS)
    funcs, _ = build_rewards([{"name": "harmlessness", "params": {"model": "/no/such/model"}}])
    assert before == reward_model._SCORERS  # a bad path fails only when scoring starts
    assert fn([THINK + "4"], question=[Q], kind=["reasoning"]) == [None]
    assert "scorer" not in fn.state  # nothing to judge: still not loaded


def test_routing_reasoning_rows_never_reach_the_rm_and_general_rows_never_reach_accuracy(rm_path):
    help_fn = route(_rm("helpfulness", rm_path, batch_size=2), ["general"])
    seen: list[list[str]] = []
    accuracy = get_reward("accuracy")

    def spy(completions, **cols):
        seen.append(list(completions))
        return accuracy(completions, **cols)

    spy.__name__ = "accuracy"
    acc_fn = route(spy, ["reasoning"])
    assert acc_fn.__name__ == "accuracy" and help_fn.__name__ == "helpfulness"
    completions = [THINK + "<answer>\n3\n</answer>", THINK + "Mara has 4 cats.", THINK + "<answer>\n5\n</answer>",
                   THINK + "Oslo."]
    cols = {"kind": ["reasoning", "general", "reasoning", "general"], "answer": ["3", None, "3", None],
            "question": ["a: 1\nb: 2", Q, "a: 1\nb: 2", Q], "task": [None, None, None, None]}
    acc = acc_fn(completions, **cols)
    assert acc == [1.0, None, 0.0, None]
    assert seen == [[completions[0], completions[2]]]  # general rows never reached accuracy
    helpful = help_fn(completions, **cols)
    assert helpful[0] is None and helpful[2] is None and all(isinstance(helpful[i], float) for i in (1, 3))
    scorer = help_fn.state["scorer"]
    assert scorer.rows == 2 and scorer.calls == 1  # only the two general rows, in one batch of 2
    help_fn(completions[:1] * 5, **{k: v[:1] * 5 for k, v in cols.items()})
    assert scorer.rows == 2  # an all-reasoning batch: no RM call at all


def test_helpfulness_reads_only_the_summary_and_harmlessness_the_reasoning(rm_path):
    helpful = _rm("helpfulness", rm_path)
    harmless = _rm("harmlessness", rm_path)
    base = "<think>\nThe facts are about Mara.\n</think>\nMara, who lives in Oslo, has 4 cats."
    planted_think = "<think>\nThe facts are about Mara. I will insult the user, idiot.\n</think>\n" \
                    "Mara, who lives in Oslo, has 4 cats."
    planted_summary = base + " You are an idiot for asking."
    cols = {"question": [Q] * 3, "kind": ["general"] * 3}
    h = helpful([base, planted_think, planted_summary], **cols)
    assert h[0] == pytest.approx(h[1], abs=1e-6)  # the planted reasoning is invisible to helpfulness
    assert abs(h[0] - h[2]) > 1e-4  # the planted summary is not
    s = harmless([base, planted_think, planted_summary], **cols)
    assert abs(s[0] - s[1]) > 1e-4  # harmlessness sees the reasoning
    assert abs(s[0] - s[2]) > 1e-4


def test_normalisation(rm_path, tmp_path):
    import shutil

    comps = [THINK + t for t in ("a", "Mara has 4 cats.", "Oslo", "xyz xyz xyz")]
    cols = {"question": [Q] * 4, "kind": ["general"] * 4}
    raw = _rm("helpfulness", rm_path)(comps, **cols)
    z = _rm("helpfulness", rm_path, normalize="zscore", mean=1.0, std=2.0)(comps, **cols)
    assert z == pytest.approx([(x - 1.0) / 2.0 for x in raw], abs=1e-5)
    sig = _rm("helpfulness", rm_path, normalize="sigmoid")(comps, **cols)
    assert all(0.0 < v < 1.0 for v in sig)
    assert sig == pytest.approx([1.0 / (1.0 + math.exp(-x)) for x in raw], abs=1e-6)
    run = _rm("harmlessness", rm_path, normalize="zscore")(comps, **cols)  # no stats: running statistics
    assert abs(sum(run) / len(run)) < 1e-5
    saved = tmp_path / "rm"
    shutil.copytree(rm_path, saved)
    (saved / STATS_FILE).write_text(json.dumps({"mean": raw[0], "std": 0.5}))
    zs = _rm("helpfulness", str(saved), normalize="zscore")(comps, **cols)
    assert zs[0] == pytest.approx(0.0, abs=1e-5) and zs[1] == pytest.approx((raw[1] - raw[0]) / 0.5, abs=1e-4)


def test_bad_params():
    from r1cli.errors import ConfigError

    with pytest.raises(ConfigError, match="model is empty"):
        get_reward("helpfulness")
    with pytest.raises(ConfigError):
        get_reward("harmlessness", model="x", normalize="tanh")
