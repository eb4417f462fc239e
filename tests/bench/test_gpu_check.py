"""bench/gpu_check.py in its CPU `--smoke` mode (tiny Qwen2, 4-bit QLoRA, 2 GRPO steps), so the GPU check does not
rot between the rare runs on a GPU machine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("r1cli_bench_gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_qwen_config_is_the_1_5b_architecture():
    from transformers import Qwen2Config

    cfg = Qwen2Config(**{k: v for k, v in _module().QWEN25_1_5B.items() if k != "model_type"})
    h, i, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    kv = h // cfg.num_attention_heads * cfg.num_key_value_heads
    per_layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    body = L * per_layer + h
    assert 1.30e9 < body < 1.32e9, body  # the card's 1.31B non-embedding parameters
    assert 1.53e9 < V * h + body < 1.55e9  # 1.54B in all (tied embeddings)


@pytest.mark.slow
def test_smoke_mode_prints_one_json_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("R1CLI_QUIET", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _module().main(["--smoke", "--workdir", str(tmp_path)])
    lines = [x for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    rec = json.loads(lines[0])
    assert rec["mode"] == "smoke" and rec["steps"] == 2 and len(rec["step_s"]) == 2
    assert rec["completion_length_mean"] == 16.0  # EOS off: every completion runs to max_new_tokens
    assert 0 < rec["trainable_params"] < rec["params"]  # LoRA adapters only
    assert rec["step_s_median"] > 0 and rec["versions"]["bitsandbytes"] != "missing"
