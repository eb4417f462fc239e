"""`r1 reject-sample` end to end on the tiny-test base: counts add up, decontamination, pass-through, the judge
(behind a real local HTTP server), dedup and max_keep, the coldstart-ready output, shard resume."""

from __future__ import annotations

import json

import pytest

from chat_server import ChatServer
from r1cli.config_loader import build
from r1cli.errors import ConfigError, UsageError

OFF = {"require_format": False, "max_paragraph_chars": None, "max_repetition": None, "max_language_mixing": None,
       "allow_code_blocks": True}
EVAL_Q = ("A train leaves the station at noon travelling at sixty miles per hour towards a city that is three "
          "hundred miles away.")


def _cfg(model, out, **kw):
    from r1cli.stages.reject_sample_config import RejectSampleConfig

    values = {"model": str(model), "output": str(out), "n": 3, "max_new_tokens": 24, "shard_size": 2}
    values.update(kw)
    return build(RejectSampleConfig, values)


def _run(cfg, resume=False, overwrite=False):
    from r1cli.commands.common import execute
    from r1cli.stages import reject_sample

    return execute("reject-sample", reject_sample, cfg, "dataset", resume=resume, overwrite=overwrite,
                   as_json=True)


def _check_counts(m):
    assert m["samples"] == m["kept"] + sum(m["rejected"].values()), m
    assert m["prompts"] == m["decontaminated"] + m["prompts_sampled"] + m["passthrough"] + m["non_reasoning_dropped"]


def AlwaysCorrect() -> ChatServer:  # noqa: N802
    """A real OpenAI-compatible endpoint whose judge accepts everything."""
    return ChatServer(lambda body: "CORRECT")


@pytest.fixture
def mixed(tmp_path):
    rows = [
        {"question": "What is 3 + 4?", "final": "7"},                      # rule-checked (the tiny model is wrong)
        {"question": "Name the capital of France.", "final": "Paris"},      # rules cannot parse: judge
        {"question": "Write a haiku about rain.", "final": None, "completion": "Soft rain on the roof."},
        {"question": "Say hello.", "final": None},                          # no answer, no completion: dropped
        {"question": EVAL_Q + " When does it arrive?", "final": "5"},       # contaminated
    ]
    p = tmp_path / "rows.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": EVAL_Q + " How far has it gone by 2pm?", "answer": "120"}) + "\n")
    return p, bench


@pytest.mark.slow
def test_builtin_task_counts_add_up(tiny_base_path, tmp_path):
    import datasets

    man = _run(_cfg(tiny_base_path, tmp_path / "rs", num_prompts=4, eval_sets=["arith"]))
    m = man["metrics"]
    assert m["prompts"] == 4 and m["prompts_sampled"] == 4 and m["samples"] == 12
    _check_counts(m)
    assert m["shards"] == 2 and m["samples_per_s"] > 0
    assert man["decontamination"]["sources"]["arith"]["match"] == "exact"
    ds = datasets.load_from_disk(str(tmp_path / "rs" / "data"))
    assert set(ds.column_names) >= {"prompt", "completion", "answer"} and len(ds) == m["rows"]


@pytest.mark.slow
def test_mixed_rows_judge_passthrough_decontamination_dedup(tiny_base_path, tmp_path, mixed):
    from types import SimpleNamespace

    import datasets

    from r1cli.sft import to_prompt_completion

    data, bench = mixed
    srv = AlwaysCorrect()
    try:
        man = _run(_cfg(tiny_base_path, tmp_path / "rs", input=str(data), columns={"prompt": "question",
                        "answer": "final"}, eval_sets=[str(bench)], filters=OFF, temperature=0.0, drop_truncated=False,
                        judge={"backend": "remote", "url": srv.url, "model": "judge"}))
    finally:
        srv.close()
    m = man["metrics"]
    _check_counts(m)
    assert m["decontaminated"] == 1 and man["decontamination"]["by_eval_set"] == {"bench": 1}
    assert m["passthrough"] == 1 and m["non_reasoning_dropped"] == 1 and m["prompts_sampled"] == 2
    # greedy: the 3 samples of a prompt are one text -> 1 kept (judged correct), 2 duplicates
    assert m["judged"] == 3 and len(srv.bodies) == 3
    assert m["kept"] == 1 and m["rejected"]["duplicate"] == 2 and m["rejected"]["incorrect"] == 3
    ds = datasets.load_from_disk(str(tmp_path / "rs" / "data"))
    by_source = {r["source"]: r for r in ds}
    assert by_source["passthrough"]["completion"] == "Soft rain on the roof."
    assert by_source["reject_sample"]["answer"] == "Paris"
    # what `r1 coldstart --input <this run>` reads: prompt/completion rows
    sft = to_prompt_completion(ds, None, SimpleNamespace(template="plain", instruction=None, answer_format="tags"))
    assert len(sft) == 2 and sft[0]["prompt"] == "Name the capital of France."


@pytest.mark.slow
def test_max_keep_without_judge_and_filters_reject(tiny_base_path, tmp_path, mixed):
    data, _ = mixed
    cols = {"prompt": "question", "answer": "final"}
    srv = AlwaysCorrect()
    try:
        m = _run(_cfg(tiny_base_path, tmp_path / "a", input=str(data), columns=cols, decontaminate=False,
                      filters=OFF, temperature=1.0, n=4, max_keep=2, drop_truncated=False,
                      judge={"backend": "remote", "url": srv.url, "model": "judge"}))["metrics"]
    finally:
        srv.close()
    _check_counts(m)
    # the "7" and "5" rows (no decontamination): 8 incorrect; the Paris row: 4 judged correct, 2 distinct kept
    assert m["prompts_sampled"] == 3 and m["judged"] == 4 and m["rejected"]["incorrect"] == 8
    assert m["kept"] == 2 and m["rejected"]["over_max_keep"] + m["rejected"]["duplicate"] == 2, m
    # no judge: the Paris row is unverifiable; default filters reject the tiny model's unformatted text first
    m = _run(_cfg(tiny_base_path, tmp_path / "b", input=str(data), columns=cols, decontaminate=False,
                  filters={"max_language_mixing": None}))["metrics"]
    _check_counts(m)
    assert m["kept"] == 0 and m["rejected"]["format"] + m["rejected"]["truncated"] == m["samples"]
    m = _run(_cfg(tiny_base_path, tmp_path / "c", input=str(data), columns=cols, decontaminate=False,
                  filters=OFF, drop_truncated=False))["metrics"]
    assert m["rejected"]["unverifiable"] == 3 and m["rejected"]["incorrect"] == 6 and m["kept"] == 0


@pytest.mark.slow
def test_resume_remakes_only_broken_shards(tiny_base_path, tmp_path):
    import datasets

    out = tmp_path / "rs"
    cfg = _cfg(tiny_base_path, out, num_prompts=6, decontaminate=False, filters=OFF, drop_truncated=False,
               task="arith")
    first = _run(cfg)
    rows = datasets.load_from_disk(str(out / "data")).to_list()
    log = out / "shards.jsonl"  # the keyed log: one record (line) per finished shard
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    log.write_bytes(lines[0] + lines[2][: len(lines[2]) // 2])   # shard 1 never logged, shard 2 torn by a kill
    again = _run(cfg, resume=True)
    assert again["metrics"]["shards_resumed"] == 1
    assert datasets.load_from_disk(str(out / "data")).to_list() == rows
    assert {k: v for k, v in again["metrics"].items() if k not in ("samples_per_s", "rows_per_s",
            "shards_resumed", "generation_seconds")} == {k: v for k, v in first["metrics"].items() if k not in (
            "samples_per_s", "rows_per_s", "shards_resumed", "generation_seconds")}
    with pytest.raises(UsageError, match="another model, prompt set or settings"):
        _run(_cfg(tiny_base_path, out, num_prompts=6, decontaminate=False, filters=OFF, drop_truncated=False,
                  task="arith", temperature=0.9), resume=True)


def test_config_errors(tmp_path):
    from r1cli.stages.reject_sample_config import RejectSampleConfig

    for bad in ({"n": 0}, {"max_keep": 0}, {"shard_size": 0}, {"filters": {"max_repetition": 2}},
                {"judge": {"backend": "remote"}}, {"top_p": 0}):
        with pytest.raises(ConfigError):
            build(RejectSampleConfig, bad)
