"""`r1 coldstart` end to end on the tiny-test base: row shapes, column mapping and errors, resume."""

from __future__ import annotations

import json

import pytest

from r1cli.config_loader import build


def _rows(n=24):
    return [{"question": f"{i}+{i + 1}", "reasoning": f"{i}+{i + 1}={2 * i + 1}", "answer": str(2 * i + 1)} for i in range(n)]


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("sft") / "rows.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in _rows()))
    return p


def _cfg(model, data, out, **kw):
    from r1cli.stages.coldstart_config import ColdstartConfig

    values = {
        "model": str(model),
        "input": str(data),
        "output": str(out),
        "columns": {"prompt": "question"},
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-3,
        "max_length": 128,
        "save_steps": 2,
        "logging_steps": 1,
        "disable_tqdm": True,
    }
    values.update(kw)
    return build(ColdstartConfig, values)


def _run(cfg, resume=False, overwrite=False):
    from r1cli.commands.common import execute
    from r1cli.stages import coldstart

    return execute("coldstart", coldstart, cfg, "model", resume=resume, overwrite=overwrite, as_json=True)


@pytest.mark.slow
def test_coldstart_trains_saves_and_resumes(tiny_base_path, sft_file, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "cs"
    man = _run(_cfg(tiny_base_path, sft_file, out))
    assert man["status"] == "complete"
    cap = capsys.readouterr()
    assert json.loads(cap.out)["stage"] == "coldstart", "stdout must hold the result alone (trainer logs on stderr)"
    # transformers' per-load and per-checkpoint bars stay off stderr (r1's own lines say what was loaded/saved)
    assert "Writing model shards" not in cap.err and "Loading weights" not in cap.err
    m = man["metrics"]
    assert m["rows"] == 24 and m["steps"] == 3
    assert m["last_logged_loss"] < m["first_logged_loss"], "loss did not go down"
    assert [i["name"] for i in man["inputs"]] == ["input", "model"]
    AutoModelForCausalLM.from_pretrained(out / "model")  # plain HF code loads it
    AutoTokenizer.from_pretrained(out / "model")
    assert (out / "checkpoints" / "checkpoint-2" / ".r1cli-complete").exists()
    # resume with more epochs: continues from the last complete checkpoint, step counter continues
    man2 = _run(_cfg(tiny_base_path, sft_file, out, num_train_epochs=2.0), resume=True)
    assert man2["metrics"]["resumed_from"].endswith("checkpoint-3")
    assert man2["metrics"]["steps"] == 6


@pytest.mark.slow
def test_coldstart_errors(tiny_base_path, sft_file, tmp_path):
    from r1cli.errors import ConfigError, InputArtifactError

    with pytest.raises(InputArtifactError, match="column mapping"):
        _run(_cfg(tiny_base_path, sft_file, tmp_path / "a", columns={"prompt": "nope"}))
    with pytest.raises(InputArtifactError, match="prompt\\+completion"):
        _run(_cfg(tiny_base_path, sft_file, tmp_path / "b", columns={}))
    with pytest.raises(ConfigError, match="needs training data"):
        _run(_cfg(tiny_base_path, sft_file, tmp_path / "c", input=None))
    with pytest.raises(ConfigError, match="learning_rate"):
        _cfg(tiny_base_path, sft_file, tmp_path / "d", learning_rate=0)


@pytest.mark.slow
def test_lora_coldstart_then_merge(tiny_base_path, sft_file, tmp_path):
    """LoRA SFT writes an adapter; `r1 merge` turns it into a plain full model that loads without peft."""
    import torch
    from transformers import AutoModelForCausalLM

    from r1cli.commands.common import execute
    from r1cli.stages import merge
    from r1cli.stages.merge_config import MergeConfig

    out = tmp_path / "lora"
    _run(_cfg(tiny_base_path, sft_file, out, use_peft=True, lora_r=4, lora_alpha=8, save_strategy="no"))
    assert (out / "model" / "adapter_config.json").exists()
    man = execute("merge", merge, MergeConfig(model=str(out), output=str(tmp_path / "merged")), "model",
                  resume=False, overwrite=False, as_json=True)
    assert man["metrics"]["architecture"] == "Qwen2ForCausalLM"
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged" / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_base_path)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert not torch.allclose(merged(ids).logits, base(ids).logits), "the merge did not change the weights"
