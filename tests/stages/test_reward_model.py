"""`r1 reward-model` end to end on the tiny-test base: built-in pairs (full), a mapped JSONL dataset (LoRA, merged
on save), held-out pairwise accuracy in the manifest, a model folder AutoModelForSequenceClassification loads."""

from __future__ import annotations

import json

import pytest

from r1cli.config_loader import build


def _cfg(model, out, **kw):
    from r1cli.stages.reward_model_config import RewardModelConfig

    values = {"model": str(model), "output": str(out), "train_size": 48, "eval_size": 24, "max_steps": 3,
              "per_device_train_batch_size": 8, "learning_rate": 1e-3, "max_length": 384, "logging_steps": 1,
              "disable_tqdm": True}
    values.update(kw)
    return build(RewardModelConfig, values)


def _run(cfg):
    from r1cli.commands.common import execute
    from r1cli.stages import reward_model

    return execute("reward-model", reward_model, cfg, "model", resume=False, overwrite=False, as_json=True)


def test_reward_model_builtin_pairs(tiny_base_path, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from r1cli.rewards.reward_model import STATS_FILE

    out = tmp_path / "rm"
    man = _run(_cfg(tiny_base_path, out))
    m = man["metrics"]
    assert man["status"] == "complete" and m["steps"] == 3 and m["heldout_pairs"] == 24
    assert 0.0 <= m["heldout_accuracy"] <= 1.0 and 0.0 <= m["heldout_accuracy_untrained"] <= 1.0
    assert set(m["heldout_accuracy_per_flaw"]) <= {"rambling", "wrong", "unformatted", "unsafe", "complied"}
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.num_labels == 1
    stats = json.loads((out / "model" / STATS_FILE).read_text())
    assert stats["std"] > 0 and stats["n"] == 48
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in logged)


def test_reward_model_dataset_lora_and_errors(tiny_base_path, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from r1cli.errors import ConfigError, InputArtifactError
    from r1cli.tasks.preference import preference_rows

    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for r in preference_rows("train", 40, seed=1):
            f.write(json.dumps({"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]}) + "\n")
    out = tmp_path / "rm-lora"
    man = _run(_cfg(tiny_base_path, out, input=str(path), use_peft=True, lora_r=4, lora_alpha=8,
                    columns={"prompt": "question", "chosen": "good", "rejected": "bad"}, max_steps=2))
    assert man["metrics"]["heldout_pairs"] == 4 and "heldout_accuracy_per_flaw" not in man["metrics"]
    assert not (out / "model" / "adapter_config.json").exists()  # merged: a plain reward model
    AutoModelForSequenceClassification.from_pretrained(out / "model")
    with pytest.raises(InputArtifactError, match="chosen and rejected"):
        _run(_cfg(tiny_base_path, tmp_path / "bad", input=str(path)))
    with pytest.raises(ConfigError, match="load_in_4bit"):
        _cfg(tiny_base_path, tmp_path / "q", load_in_4bit=True, use_peft=True)
