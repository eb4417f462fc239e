"""The rewards registry: lazy building, names, params validation, recipe specs."""

from __future__ import annotations

import doctest
import importlib

import pytest

import r1cli.rewards as rewards
from r1cli.errors import ConfigError
from r1cli.rewards import RewardSpec, available, build_rewards, get_reward


def test_available_lists_every_registered_reward():
    assert available() == sorted(
        [
            "accuracy",
            "code",
            "cosine_length",
            "format",
            "harmlessness",
            "helpfulness",
            "language_consistency",
            "reasoning_steps",
            "repetition",
            "soft_overlong",
            "tag_count",
        ]
    )


@pytest.mark.parametrize("name", available())
def test_function_name_is_the_registered_name(name, tmp_path):
    # reward-model rewards need a model path; building them loads nothing (lazy), so any path will do here
    params = {"model": str(tmp_path)} if name in ("helpfulness", "harmlessness") else {}
    fn = get_reward(name, **params)
    assert fn.__name__ == name  # TRL logs rewards under __name__


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        get_reward("acuracy")
    assert "accuracy" in (e.value.hint or "") and "format" in (e.value.hint or "")
    with pytest.raises(ConfigError):
        RewardSpec("nope")


def test_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match="unknown config key"):
        get_reward("repetition", ngram=3)
    with pytest.raises(ConfigError, match="max_penalty"):
        get_reward("repetition", max_penalty=1.0)
    with pytest.raises(ConfigError):
        get_reward("soft_overlong", max_length=100, buffer=200)
    with pytest.raises(ConfigError, match="not supported"):
        get_reward("language_consistency", language="xx")
    with pytest.raises(ConfigError):
        get_reward("format", style="loose")


def test_params_are_coerced_from_strings():
    fn = get_reward("soft_overlong", max_length="100", buffer="20", unit="chars")
    assert fn(["x" * 90]) == [-0.5]


def test_build_rewards_only_builds_the_selected(monkeypatch):
    built = []
    real = importlib.import_module

    def spy(name, *a, **k):
        built.append(name)
        return real(name, *a, **k)

    monkeypatch.setattr(rewards.importlib, "import_module", spy)
    funcs, weights = build_rewards(
        ["accuracy", {"name": "format", "weight": 0.5, "params": {"style": "r1-zero"}}]
    )
    assert [f.__name__ for f in funcs] == ["accuracy", "format"]
    assert weights == [1.0, 0.5]
    assert set(built) <= {"r1cli.rewards.accuracy", "r1cli.rewards.format"}


def test_build_rewards_rejects_duplicates_empty_and_bad_entries():
    with pytest.raises(ConfigError, match="twice"):
        build_rewards(["accuracy", {"name": "accuracy"}])
    with pytest.raises(ConfigError):
        build_rewards([])
    with pytest.raises(ConfigError):
        build_rewards([{"name": "accuracy", "wieght": 2}])
    with pytest.raises(ConfigError):
        build_rewards([{"name": "accuracy", "weight": "heavy"}])
    with pytest.raises(ConfigError):
        build_rewards([42])


def test_accuracy_needs_its_column_and_reads_conversational_completions():
    fn = get_reward("accuracy")
    with pytest.raises(ValueError, match="answer"):
        fn(["\\boxed{2}"], solution=["2"])
    conv = [[{"role": "assistant", "content": "<think>\n1+1\n</think>\n<answer>\n2\n</answer>"}]]
    assert fn(conv, answer=["2"]) == [1.0]
    assert get_reward("accuracy", column="solution")(["\\boxed{2}"], solution=["2"]) == [1.0]
    assert fn(["\\boxed{2}"], answer=[""]) == [None]


@pytest.mark.parametrize(
    "module",
    [*(f"rewards.{m}" for m in ("accuracy", "format", "length", "repetition", "steps", "language", "code")),
     "grading.answers", "grading.engine"],
)
def test_docstring_examples(module):
    mod = importlib.import_module(f"r1cli.{module}")
    failures, _ = doctest.testmod(mod, extraglobs={"get_reward": get_reward}, optionflags=doctest.ELLIPSIS)
    assert failures == 0
