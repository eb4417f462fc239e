"""The embedded tiny base: tokenizer round-trip through AutoTokenizer, plain-HF reload, cache validity, determinism."""

from __future__ import annotations

import json

import pytest

from r1cli import tinybase as tb
from r1cli.prompts import build_prompt
from r1cli.runs import sha256_file
from r1cli.tasks import get_task
from r1cli.tinybase import cache as tb_cache


@pytest.fixture(scope="module")
def samples():
    texts = []
    for name in ("arith", "countdown", "linear"):
        t = get_task(name)
        for row in t.generate("test", 20, seed=5):
            texts.append(row["prompt"])
            texts.extend(t.solution(row, style=s) for s in t.styles)
    return texts + ["héllo wörld — ünïcode 🙂\r\n\ttabs  and   spaces", "Ünïcode NFC: e\u0301"]


def test_tokenizer_round_trips_through_autotokenizer(tmp_path, samples):
    from transformers import AutoTokenizer

    tok = tb.train_tokenizer(samples * 5, vocab_size=330)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    for text in samples:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert loaded(text, add_special_tokens=False)["input_ids"] == ids
        assert loaded.decode(ids) == tok.decode(ids)
    # byte-level: every string decodes back (NFC-normalised)
    import unicodedata

    for text in samples:
        assert loaded.decode(loaded(text, add_special_tokens=False)["input_ids"]) == unicodedata.normalize("NFC", text)
    chat = build_prompt("What is 2?", "chat", loaded, instruction=None)
    assert chat == "<|im_start|>user\nWhat is 2?<|im_end|>\n<|im_start|>assistant\n"
    ids = loaded(chat, add_special_tokens=False)["input_ids"]
    assert ids == tok(chat, add_special_tokens=False)["input_ids"]
    assert ids[0] == loaded.convert_tokens_to_ids("<|im_start|>") == 1
    assert loaded.eos_token == "<|im_end|>" and loaded.pad_token == "<|endoftext|>"


def test_r1_tags_are_ordinary_text(tmp_path, samples):
    tok = tb.train_tokenizer(samples * 5, vocab_size=330)
    specials = set(tok.all_special_tokens)
    assert specials == {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
    text = "<think>\nStep by step:\n</think>\n<answer>\n7\n</answer><|im_end|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == text.replace("<|im_end|>", "")


def test_tiny_base_loads_with_plain_hf(tiny_base_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base_path)
    tok = AutoTokenizer.from_pretrained(tiny_base_path)
    assert model.config.model_type == "qwen2"
    assert model.config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.vocab_size == len(tok)
    info = tb.build_info(tiny_base_path)
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert info["tokens_per_second"] > 0 and info["train_steps"] == tb.PRESETS["tiny-test"].train_steps
    prompt = build_prompt(get_task("arith").generate("test", 1)[0]["prompt"], "chat", tok, instruction=None)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_pretraining_learned_the_format(tiny_base_path):
    """Even the seconds-scale base opens its completions with the R1 think tag (it learned something)."""
    res = tb.evaluate_accuracy(tiny_base_path, "arith", n=32, greedy=True, max_new_tokens=6)
    assert res["n"] == 32 and 0.0 <= res["accuracy"] <= 1.0
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_path)
    row = get_task("arith").generate("test", 1)[0]
    enc = tok(build_prompt(row["prompt"], "chat", tok, instruction=None), return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, enc["input_ids"].shape[1] :]).startswith("<think>")


def test_cache_reuses_complete_builds_only(tiny_base_path, monkeypatch):
    key = json.loads((tiny_base_path / tb.MANIFEST).read_text())["key"]
    assert tb.is_complete(tiny_base_path, key)
    assert not tb.is_complete(tiny_base_path, "another-key")

    def boom(*a, **k):
        raise AssertionError("rebuilt although a complete build is cached")

    monkeypatch.setattr(tb_cache, "build", boom)
    assert tb.ensure_base("tiny-test", seed=0) == tiny_base_path  # reused, not rebuilt


def test_incomplete_or_tampered_build_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CLI_CACHE", str(tmp_path))
    calls = []

    def fake_build(cfg, seed, out):  # a stand-in that writes a valid manifest (the real build is tested above)
        calls.append(out)
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"weights")
        files = {"model.safetensors": sha256_file(out / "model.safetensors")}
        (out / tb.MANIFEST).write_text(json.dumps({"key": cfg.key(seed), "files": files}))

    monkeypatch.setattr(tb_cache, "build", fake_build)
    p = tb.ensure_base("tiny-test", seed=7, train_steps=1)
    assert len(calls) == 1 and p.name.startswith("tiny-test-s7-") and not calls[0].exists()
    assert tb.ensure_base("tiny-test", seed=7, train_steps=1) == p and len(calls) == 1
    (p / "model.safetensors").write_bytes(b"truncated")  # tampered/half-written weights
    tb.ensure_base("tiny-test", seed=7, train_steps=1)
    assert len(calls) == 2
    (p / tb.MANIFEST).unlink()  # a folder without its manifest is not a build
    tb.ensure_base("tiny-test", seed=7, train_steps=1)
    assert len(calls) == 3
    # the key covers seed and every config field
    assert tb.ensure_base("tiny-test", seed=8, train_steps=1) != p
    assert tb.preset_config("tiny-test").key(0) != tb.preset_config("tiny-test", train_steps=3).key(0)


def test_build_is_deterministic_by_seed(tmp_path):
    import torch
    from safetensors.torch import load_file

    def weights(cache, seed):
        cfg = tb.preset_config("tiny-test", train_steps=3)
        out = cache / f"b{seed}"
        tb.build(cfg, seed, out)
        return load_file(out / "model.safetensors")

    a, b, c = weights(tmp_path / "1", 0), weights(tmp_path / "2", 0), weights(tmp_path / "3", 1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].shape == c[k].shape)


def test_unknown_preset_is_a_config_error():
    from r1cli.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown tiny preset"):
        tb.preset_config("huge")
    with pytest.raises(ConfigError, match="train_steps"):
        tb.preset_config("tiny", train_steps=0)


def test_corpus_mix_schedule_and_mixed_steps():
    cfg = tb.preset_config("tiny", train_steps=100, batch_size=32, detailed_share_start=0.5, detailed_share=0.2)
    assert tb.detailed_share_at(0, cfg) == 0.5 and tb.detailed_share_at(75, cfg) == pytest.approx(0.2)
    assert tb.detailed_share_at(99, cfg) == pytest.approx(0.2)
    rows = tb.corpus_rows(cfg, 100 * 32, seed=0)
    early = [c.startswith("<think>\nStep by step:") for _, c in rows[: 10 * 32]]
    late = [c.startswith("<think>\nStep by step:") for _, c in rows[80 * 32 :]]
    assert 0.4 < sum(early) / len(early) < 0.6 and 0.12 < sum(late) / len(late) < 0.28
    # every step keeps its rows (sorted by length into micro-batches), so steps are not one style
    enc = [(list(range(len(c))), 1) for _, c in rows]
    plan = tb.batches(enc, 32, 4)
    assert len(plan) == 100 and all(len(step) == 4 and sum(map(len, step)) == 32 for step in plan)
    assert all(len(step[0][0][0]) <= len(step[-1][-1][0]) for step in plan)


def test_tokenizer_corpus_does_not_follow_the_task_registry(tmp_path, monkeypatch):
    """Registering a new built-in task must not change the base built under an unchanged cache key (adding
    `addition` to the registry once changed the tiny tokenizer's corpus, so a fresh cache built another base)."""
    import r1cli.tasks as tasks

    class Stop(Exception):
        pass

    def corpus_of() -> list[str]:
        seen: list[str] = []

        def capture(texts, vocab_size):
            seen.extend(texts)
            raise Stop

        monkeypatch.setattr(tb_cache, "train_tokenizer", capture)
        with pytest.raises(Stop):
            tb_cache.build(tb.preset_config("tiny-test"), seed=0, out=tmp_path / "b")
        return seen

    before = corpus_of()
    monkeypatch.setitem(tasks._TASKS, "aaa_new", tasks._TASKS["linear"])
    assert "aaa_new" in tasks.available_tasks()
    assert corpus_of() == before
