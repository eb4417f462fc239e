"""`r1 align` on the tiny-test base: config (mixture, rewards per kind), the mixed prompt set, and a two-step run
with rule rewards on reasoning rows and a reward model (trained here by `r1 reward-model`) on general rows."""

from __future__ import annotations

import json

import pytest

from r1cli.config_loader import build
from r1cli.errors import ConfigError


def _cfg(model, out, **kw):
    from r1cli.stages.align_config import AlignConfig

    values = {
        "model": str(model), "output": str(out),
        "mixture": [{"input": "arith", "kind": "reasoning", "n": 16}, {"input": "general", "n": 16}],
        "per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 24, "max_steps": 2,
        "save_steps": 1, "learning_rate": 1e-4, "disable_tqdm": True,
    }
    values.update(kw)
    return build(AlignConfig, values)


def test_config_derives_rewards_from_kinds(tmp_path):
    cfg = _cfg("tiny", tmp_path / "a", reward_model="runs/x/rm", rewards_by_kind={
        "reasoning": ["accuracy", {"name": "format", "weight": 0.2}],
        "general": [{"name": "helpfulness"}, {"name": "harmlessness", "weight": 0.5, "params": {"normalize": "sigmoid"}},
                    {"name": "format", "weight": 0.2}],
    })
    names = [r["name"] for r in cfg.rewards]
    assert names == ["accuracy", "format", "helpfulness", "harmlessness"]
    assert cfg.reward_weights == [1.0, 0.2, 1.0, 0.5]
    assert cfg.reward_kinds()["format"] == ["reasoning", "general"]
    hp = cfg.rewards[2]["params"]
    assert hp == {"model": "runs/x/rm", "normalize": "zscore", "device": "auto", "kinds": ["general"]}
    assert cfg.rewards[3]["params"]["normalize"] == "sigmoid"
    # a dumped config (rewards written out) loads back
    from r1cli.config_loader import to_plain

    again = build(type(cfg), {k: v for k, v in to_plain(cfg).items() if k in ("model", "output", "mixture",
                  "rewards_by_kind", "reward_model", "rewards", "reward_weights", "num_generations",
                  "per_device_train_batch_size")})
    assert again.rewards == cfg.rewards
    one = _cfg("tiny", tmp_path / "i", reward_model="x", input="runs/x/data", columns={"prompt": "q"})
    assert one.mixture == [{"input": "runs/x/data", "columns": {"prompt": "q"}, "task_params": {}}]
    with pytest.raises(ConfigError, match="derived"):
        _cfg("tiny", tmp_path / "b", rewards=[{"name": "accuracy"}])
    with pytest.raises(ConfigError, match="same spec"):
        _cfg("tiny", tmp_path / "c", rewards_by_kind={"reasoning": ["format"], "general": [{"name": "format",
                                                                                             "weight": 2}]})
    with pytest.raises(ConfigError, match="unknown key"):
        _cfg("tiny", tmp_path / "d", mixture=[{"input": "arith", "size": 3}])
    with pytest.raises(ConfigError, match="does not score"):
        _cfg("tiny", tmp_path / "e", mixture=[{"input": "arith", "kind": "chat"}])


def test_mixture_weights_and_rendering(tiny_base_path, tmp_path):
    from r1cli.models import load_tokenizer
    from r1cli.runs import RunDir
    from r1cli.stages.align import build_prompts

    cfg = _cfg(tiny_base_path, tmp_path / "m", reward_model="x", mixture=[
        {"input": "arith", "kind": "reasoning", "n": 30, "weight": 3},
        {"input": "general", "n": 10, "weight": 1},
    ])
    run = RunDir.prepare(cfg.output, "align", "model", overwrite=False, resume=False)
    rows = build_prompts(cfg, run, load_tokenizer(cfg))
    kinds = [r["kind"] for r in rows]
    assert len(rows) == 40 and kinds.count("reasoning") == 30 and kinds.count("general") == 10
    assert set(rows[0]) >= {"prompt", "question", "kind", "answer", "task", "category"}
    gen = next(r for r in rows if r["kind"] == "general")
    assert gen["answer"] is None and gen["question"] in gen["prompt"] and "<|im_start|>" in gen["prompt"]
    assert "boxed" not in gen["prompt"]  # no math instruction on general prompts
    cfg.mixture = [{"input": "arith", "kind": "reasoning", "n": 30, "weight": 1}, {"input": "general", "n": 10}]
    kinds = [r["kind"] for r in build_prompts(cfg, run, load_tokenizer(cfg))]
    assert kinds.count("reasoning") == 20 and kinds.count("general") == 20  # 1:1, general rows repeated
    cfg.mixture = [{"input": "arith", "kind": "reasoning", "n": 30}, {"input": "general", "n": 10}]
    kinds = [r["kind"] for r in build_prompts(cfg, run, load_tokenizer(cfg))]
    assert kinds.count("reasoning") == 30 and kinds.count("general") == 10  # no weights: every row once


@pytest.mark.slow
def test_align_end_to_end(tiny_base_path, tmp_path):
    from transformers import AutoModelForCausalLM

    from r1cli.commands.common import execute
    from r1cli.stages import align, reward_model
    from r1cli.stages.reward_model_config import RewardModelConfig

    rm_cfg = build(RewardModelConfig, {"model": str(tiny_base_path), "output": str(tmp_path / "rm"), "train_size": 32,
                                       "eval_size": 8, "max_steps": 2, "per_device_train_batch_size": 8,
                                       "max_length": 384, "disable_tqdm": True})
    execute("reward-model", reward_model, rm_cfg, "model", resume=False, overwrite=False, as_json=True)
    with pytest.raises(ConfigError, match="need a reward model"):
        execute("align", align, _cfg(tiny_base_path, tmp_path / "no-rm"), "model", resume=False, overwrite=False,
                as_json=True)

    out = tmp_path / "align"
    cfg = _cfg(tiny_base_path, out, reward_model=str(tmp_path / "rm"), reward_model_device="cpu")
    man = execute("align", align, cfg, "model", resume=False, overwrite=False, as_json=True)
    m = man["metrics"]
    assert man["status"] == "complete" and m["steps"] == 2 and m["prompts"] == {"general": 16, "reasoning": 16}
    assert any(i["name"] == "reward_model" for i in man["inputs"])
    AutoModelForCausalLM.from_pretrained(out / "model")
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
    assert len(logged) == 2
    for key in ("rewards/accuracy/mean", "rewards/format/mean", "rewards/helpfulness/mean",
                "rewards/harmlessness/mean"):
        assert any(key in r for r in logged), key
