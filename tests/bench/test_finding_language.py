"""Finding (c), the language-consistency reward: arith's opt-in `mixed` style, the `tiny-mix` corpus, the recipes,
and bench/finding_language.py on synthetic run folders."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import random
from pathlib import Path

import pytest

from r1cli import tinybase as tb
from r1cli.errors import ConfigError
from r1cli.rewards import get_reward
from r1cli.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
FINDINGS = ROOT / "recipes" / "tiny" / "findings"
LC_PARAMS = {"language": "en", "languages": ["en", "zh"]}


def test_mixed_style_is_opt_in_and_solves_the_problem():
    plain, mixed = get_task("arith"), get_task("arith", mixed_style=True)
    assert plain.styles == ("detailed", "terse") and type(plain).styles == ("detailed", "terse")
    assert mixed.styles == ("detailed", "terse", "mixed")
    with pytest.raises(ConfigError):
        plain.solution(plain.generate("test", 1)[0], style="mixed")
    lc = get_reward("language_consistency", **LC_PARAMS)
    rows = mixed.generate("test", 50, seed=3)
    assert rows == plain.generate("test", 50, seed=3)  # the flag changes solutions only, not problems
    from r1cli.prompts import extract_answer_tag, extract_think

    for row in rows:
        sols = {s: mixed.solution(row, style=s) for s in mixed.styles}
        for s in ("detailed", "terse"):  # the English styles are unchanged by the flag
            assert sols[s] == plain.solution(row, style=s)
        for s, text in sols.items():
            assert extract_think(text) is not None
            assert mixed.verify(row, extract_answer_tag(text)), (s, text)
            assert mixed.style_of(text) == s
            assert mixed.style_prefix(s).startswith("<think>\n") and text.startswith(mixed.style_prefix(s))
        # the mixed CoT is the detailed one with 得到 for "=" (same numbers) and the head that adds 逐步
        assert sols["mixed"].replace("得到", "=").replace(" 逐步:", ":") == sols["detailed"]
        scores = lc([sols["detailed"], sols["terse"], sols["mixed"]])
        assert scores[0] == scores[1] == 1.0
        n = row["n_terms"]
        assert scores[2] == pytest.approx(3 / (3 + 2 + 2 * n))  # Step by step | 逐 步 | 得 到 per line
    assert plain.style_of(sols["mixed"]) is None  # the default task does not know the mixed head


def test_presets_without_the_field_keep_their_keys_and_corpus():
    for name in ("tiny", "tiny-test"):
        cfg = tb.preset_config(name)
        assert cfg.mixed_share == 0.0
        legacy = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "mixed_share"}
        blob = json.dumps({"version": tb.TINYBASE_VERSION, "seed": 0, **legacy}, sort_keys=True)
        assert cfg.key(0) == hashlib.sha256(blob.encode()).hexdigest()
        assert "mixed_share" not in cfg.fields()
    mix = tb.preset_config("tiny-mix")
    assert mix.key(0) != dataclasses.replace(mix, mixed_share=0.0).key(0)
    assert mix.fields()["mixed_share"] == 0.5


def test_tiny_mix_corpus_only_rewrites_detailed_rows():
    n = 800
    mix_cfg = dataclasses.replace(tb.preset_config("tiny-mix"), train_steps=25)
    plain_cfg = dataclasses.replace(tb.preset_config("tiny"), train_steps=25)
    task = get_task("arith", mixed_style=True)
    mix, plain = tb.corpus_rows(mix_cfg, n, 0), tb.corpus_rows(plain_cfg, n, 0)
    styles = [task.style_of(c) for _, c in mix]
    for (q1, c1), (q2, c2), s in zip(mix, plain, styles, strict=True):
        assert q1 == q2
        if s == "mixed":
            assert task.style_of(c2) == "detailed"
        else:
            assert c1 == c2
    detailed = styles.count("detailed") + styles.count("mixed")
    assert 0.4 < styles.count("mixed") / detailed < 0.6
    with pytest.raises(ConfigError):
        tb.corpus_rows(dataclasses.replace(plain_cfg, mixed_share=0.5), 10, 0)
    with pytest.raises(ValueError):
        tb.TinyBaseConfig(mixed_share=1.5)


@pytest.mark.parametrize("name", ["language_rl_with", "language_rl_without", "language_eval"])
def test_findings_recipes_load(name):
    from r1cli.commands.common import config_class
    from r1cli.config_loader import load_config

    stage = "eval" if name.endswith("eval") else "rl"
    cfg = load_config(config_class(stage), FINDINGS / f"{name}.yaml",
                      overrides={"output": "/tmp/never-written", "model": "tiny"})
    if stage == "rl":
        lc = [r for r in cfg.rewards if r["name"] == "language_consistency"]
        assert len(lc) == 1 and lc[0]["params"] == LC_PARAMS
        assert lc[0]["weight"] == (1.0 if name.endswith("_with") else 0.0)


def _load_bench():
    spec = importlib.util.spec_from_file_location("finding_language", ROOT / "bench" / "finding_language.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mixed_marker_versions_are_opt_in_separable_and_solve_the_problem():
    plain, marked = get_task("arith"), get_task("arith", mixed_marker=True)
    assert marked.styles == ("detailed", "terse", "detailed_mixed", "terse_mixed")
    assert get_task("arith", mixed_style=True, mixed_marker=True).styles[2:] == ("mixed", "detailed_mixed", "terse_mixed")
    with pytest.raises(ConfigError):
        plain.solution(plain.generate("test", 1)[0], style="terse_mixed")
    from r1cli.prompts import extract_answer_tag

    lc = get_reward("language_consistency", **LC_PARAMS)
    for row in marked.generate("test", 30, seed=4):
        sols = {s: marked.solution(row, style=s) for s in marked.styles}
        for s in ("detailed", "terse"):
            assert sols[s] == plain.solution(row, style=s)
            # the mixed version is the English one with the opening line 嗯: the work after it is identical
            assert sols[f"{s}_mixed"] == sols[s].replace("<think>\n", "<think>\n嗯\n", 1)
        for s, text in sols.items():
            assert marked.style_of(text) == s and text.startswith(marked.style_prefix(s))
            assert marked.verify(row, extract_answer_tag(text))
        assert lc(list(sols.values())) == [1.0, 1.0, 0.75, 0.75]
    # the language choice is its own first token: no mixed version shares it with an English head
    tok = tb.train_tokenizer([marked.solution(r, style=s) for r in marked.generate("train", 200, seed=1)
                              for s in marked.styles], 320)
    first = {s: tok(marked.style_prefix(s), add_special_tokens=False)["input_ids"] for s in marked.styles}
    think = len(tok("<think>\n", add_special_tokens=False)["input_ids"])
    heads = {s: ids[think] for s, ids in first.items()}
    assert heads["detailed_mixed"] == heads["terse_mixed"] not in (heads["detailed"], heads["terse"])


def test_tiny_lang_corpus_mixes_both_styles_and_keeps_the_style_choices():
    n = 2000
    lang = dataclasses.replace(tb.preset_config("tiny-lang"), train_steps=60)
    plain = dataclasses.replace(tb.preset_config("tiny"), train_steps=60)
    assert lang.key(0) != tb.preset_config("tiny").key(0) and lang.fields()["mixed_share"] == 0.3
    task = get_task("arith", mixed_marker=True)
    rows, ref = tb.corpus_rows(lang, n, 0), tb.corpus_rows(plain, n, 0)
    styles = [task.style_of(c) for _, c in rows]
    for (q1, c1), (q2, c2), s in zip(rows, ref, styles, strict=True):
        assert q1 == q2 and task.style_of(c2) == s.removesuffix("_mixed")  # the tiny style choice, row by row
        assert c1 == (c2 if s in ("detailed", "terse") else c2.replace("<think>\n", "<think>\n嗯\n", 1))
    for s in ("detailed", "terse"):
        share = styles.count(f"{s}_mixed") / (styles.count(s) + styles.count(f"{s}_mixed"))
        assert 0.24 < share < 0.36, (s, share)


def _fake_eval(folder: Path, mixed_share: float, acc: float, seed: int) -> None:
    """An eval run folder with samples.jsonl + results.json made of task solutions (k=2 per problem)."""
    task = get_task("arith", mixed_marker=True)
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    n_correct = 0
    with open(folder / "samples.jsonl", "w", encoding="utf-8") as f:
        for i, row in enumerate(task.generate("test", 20, seed=0)):
            samples = []
            for j in range(2):
                style = ("detailed" if j == 0 else "terse") + ("_mixed" if (2 * i + j) < mixed_share * 40 else "")
                ok = rng.random() < acc
                n_correct += ok
                samples.append({"completion": task.solution(row, style), "correct": ok})
            f.write(json.dumps({"benchmark": "arith", "index": i, "samples": samples}, ensure_ascii=False) + "\n")
    p = n_correct / 40
    (folder / "results.json").write_text(json.dumps({"model": str(folder), "benchmarks": {"arith": {
        "n_problems": 20, "k": 2, "pass@1": p, "cons@k": p, "mean_length": 30.0, "ci": {"pass@1": {"se": 0.05}}}}}))


def test_bench_script_on_synthetic_runs(tmp_path, capsys):
    _fake_eval(tmp_path / "eval_base", 0.25, 0.2, seed=1)
    for seed in (0, 1):
        for arm, share, acc in (("without", 0.5, 0.5), ("with", 0.0, 0.45)):
            _fake_eval(tmp_path / f"eval_{arm}_s{seed}", share, acc, seed=seed + len(arm))
            d = tmp_path / f"rl_{arm}_s{seed}"
            d.mkdir()
            w = 1.0 if arm == "with" else 0.0
            (d / "config.yaml").write_text(
                "rewards:\n- {name: accuracy}\n"
                f"- {{name: language_consistency, weight: {w}, params: {{language: en, languages: [en, zh]}}}}\n")
            (d / "metrics.jsonl").write_text("".join(
                json.dumps({"step": s, "rewards/accuracy/mean": 0.1 * s, "rewards/language_consistency/mean": 0.9,
                            "completions/mean_length": 30}) + "\n" for s in (1, 2, 3)))
    line = _load_bench().main([str(tmp_path)])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["with"]["mean"]["mixing_rate"] == line["with"]["mean"]["mixing_rate"] == 0.0
    assert printed["without"]["s1"]["mixing_rate"] == pytest.approx(0.5)
    assert printed["without"]["s0"]["mixing_by_style"] == {"detailed": 0.5, "terse": 0.5}
    assert printed["base"]["mixing_rate"] == pytest.approx(0.25)
    assert printed["base"]["detailed_share"] == 0.5
    assert printed["lc_weight"] == 1.0 and printed["lc_params"] == LC_PARAMS
    assert printed["seeds"] == [0, 1] and printed["rl_steps"] == {"without": [3], "with": [3]}
    png, md = tmp_path / "finding_language.png", tmp_path / "finding_language.md"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    note = md.read_text(encoding="utf-8")
    for seed in (0, 1):  # numbers are read from the runs, every seed
        res = json.loads((tmp_path / f"eval_without_s{seed}" / "results.json").read_text())
        assert f"{100 * res['benchmarks']['arith']['pass@1']:.1f}%" in note
    assert "50.0%" in note and "嗯" in note and "slight degradation" in note
