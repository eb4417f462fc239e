"""The GRPO preflight check (`r1cli.grpo.preflight`, `r1 rl --preflight`): its numbers against the same quantities
computed by reward functions inside TRL's scoring path, the stop on an all-flat set-up (exit 4, one error and one
hint line), the warning above the threshold, and that the check leaves the trainer as it found it."""

from __future__ import annotations

import json

import pytest

from r1cli.errors import StageError

G = 4


def _rows():
    """Six prompts: two built-in arith rows (graded by the task) and four math rows, two of whose golds the grader
    cannot use (blank; `$`, which math-verify cannot parse)."""
    from r1cli.tasks import get_task

    task_rows = get_task("arith").generate("train", 2, seed=0)
    math_rows = [{"prompt": f"What is {a} + {a}?", "answer": g} for a, g in [(1, "2"), (2, "4"), (3, None), (4, "$")]]
    return task_rows + math_rows


def no_answer(completions, **kw):
    from r1cli.grading.answers import extract_answer

    return [float(extract_answer(c) is None) for c in completions]


def n_tokens(completions, completion_ids, **kw):
    return [float(len(ids)) for ids in completion_ids]


def n_chars(completions, **kw):
    return [float(len(c)) for c in completions]


def constant(completions, **kw):
    return [0.5] * len(completions)


def _trainer(model_path, tmp_path, funcs, **kw):
    from r1cli.config_loader import build
    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.models import load_model
    from r1cli.stages.rl import rollout_dataset
    from r1cli.stages.rl_config import RLConfig

    values = {"model": str(model_path), "output": str(tmp_path / "run"), "num_generations": G,
              "per_device_train_batch_size": 2 * G, "max_completion_length": 64, "max_steps": 1,
              "disable_tqdm": True}
    values.update(kw)
    cfg = build(RLConfig, values)
    cfg.reward_weights = [1.0] * len(funcs)  # the test's own reward functions, each weighted 1
    model, tok = load_model(cfg, for_training=True)
    data = rollout_dataset(cfg, _rows(), False, tok)
    return R1GRPOTrainer(model=model, reward_funcs=funcs, args=cfg, train_dataset=data, processing_class=tok)


@pytest.mark.slow
def test_report_matches_trl_scoring_and_leaves_no_trace(tiny_base_path, tmp_path):
    import torch

    from r1cli.grpo.preflight import judge, run_preflight

    trainer = _trainer(tiny_base_path, tmp_path, [no_answer, n_tokens, n_chars, constant])
    rng = torch.get_rng_state()
    report = run_preflight(trainer, 6, seed=0)
    # the three generation batches of 2 prompts x G ran through TRL's scoring, which called the rewards
    assert (report["prompts"], report["generations"], report["completions"]) == (6, G, 6 * G)
    r = report["rewards"]
    assert r["no_answer"]["mean"] == pytest.approx(report["no_answer"])  # the rewards saw the pre-fill put back too
    assert r["n_tokens"]["mean"] == pytest.approx(report["mean_length"])
    assert r["constant"]["zero_std_groups"] == 1.0 and r["constant"]["mean"] == 0.5
    assert report["ungradable_gold"] == pytest.approx(2 / 6)
    assert 0.0 <= report["truncated"] <= 1.0 and report["max_completion_length"] == 64
    assert len(report["samples"]) == 3 and all(set(s["rewards"]) == set(r) for s in report["samples"])
    best = max(s["total"] for s in report["samples"])
    assert report["samples"][0]["total"] == best
    # text lengths differ within groups, so the weighted total has variance in some group: no stop
    assert report["total"]["zero_std_groups"] < 1.0
    judge(report, max_zero_std=1.0)
    json.dumps(report)  # manifest- and --json-ready
    # nothing of the check stays in the trainer: RNG, TRL's metric buffers and token counter
    assert torch.equal(torch.get_rng_state(), rng)
    assert trainer.state.num_input_tokens_seen == 0
    assert not any(trainer._metrics["train"].values()) and not trainer._logs["completion"]
    assert trainer._rollout_log is None


@pytest.mark.slow
def test_constant_reward_stops_the_run(tiny_base_path, tmp_path):
    from r1cli.grpo.preflight import judge, run_preflight

    report = run_preflight(_trainer(tiny_base_path, tmp_path, [constant]), 4, seed=1)
    assert report["total"]["flat_groups"] == report["total"]["groups"] == 4
    assert report["total"]["distinct_values"] == [0.5]
    with pytest.raises(StageError) as e:
        judge(report, max_zero_std=0.8)
    assert e.value.exit_code == 4
    assert "all 4 prompt groups have equal rewards (every completion scored 0.5)" in e.value.message
    assert "answer format never matched" in e.value.hint and "max_completion_length=64" in e.value.hint


def _report(flat: int, groups: int = 10) -> dict:
    return {"total": {"zero_std_groups": flat / groups, "flat_groups": flat, "groups": groups,
                      "distinct_values": [0.0, 1.0]},
            "no_answer": 0.5, "truncated": 0.25, "ungradable_gold": None, "max_completion_length": 64}


def test_judge_warns_above_the_threshold_and_stops_only_when_all_flat(capsys):
    from r1cli.grpo.preflight import judge

    judge(_report(8), max_zero_std=0.8)
    assert "preflight" not in capsys.readouterr().err
    judge(_report(9), max_zero_std=0.8)
    err = capsys.readouterr().err
    assert len([x for x in err.splitlines() if "preflight" in x]) == 1 and "90%" in err
    with pytest.raises(StageError, match="each group's completions scored alike") as e:
        judge(_report(10), max_zero_std=0.8)
    assert "no gold answers" in e.value.hint


def test_pick_rows_is_seeded_and_distinct():
    from r1cli.grpo.preflight import pick_rows

    a = pick_rows(100, 32, seed=0)
    assert a == pick_rows(100, 32, seed=0) and len(set(a)) == 32 and a != pick_rows(100, 32, seed=1)
    assert pick_rows(5, 32, seed=0) == [0, 1, 2, 3, 4]


def test_config_checks():
    from r1cli.config_loader import build
    from r1cli.errors import ConfigError
    from r1cli.stages.rl_config import RLConfig

    for key, value, msg in [("preflight_prompts", -1, "preflight_prompts must be >= 0"),
                            ("preflight_max_zero_std", 1.5, "share of prompt groups"),
                            ("eval_every", -2, "eval_every must be >= 0"), ("eval_k", 0, "eval_k"),
                            ("eval_limit", 0, "eval_limit"), ("eval_max_new_tokens", 0, "eval_max_new_tokens")]:
        with pytest.raises(ConfigError, match=msg):
            build(RLConfig, {"model": "tiny", key: value})


def _cli(argv, capsys):
    from r1cli.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


@pytest.mark.slow
def test_cli_preflight_reports_and_stops(tiny_base_path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = ["--set", f"num_generations={G}", "--set", f"per_device_train_batch_size={2 * G}", "--set",
             "max_completion_length=16", "--set", "train_size=32", "--set", "preflight_prompts=8"]
    # tiny-test never writes an answer: accuracy and format are 0 everywhere
    rc, out, err = _cli(["rl", "--model", str(tiny_base_path), "--preflight", "--json", *small], capsys)
    assert rc == 4, err
    report = json.loads(out)
    assert report["rewards"]["accuracy"]["mean"] == 0.0 and report["total"]["zero_std_groups"] == 1.0
    assert report["completions"] == 8 * G
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    hints = [x for x in err.splitlines() if x.startswith("hint:")]
    assert len(errors) == 1 and len(hints) == 1 and "GRPO would learn nothing" in errors[0], err
    # a length-shaped reward varies: the table on stdout, exit 0, nothing written
    # (48 tokens: at 16 every tiny-test completion is cut at the same length)
    rc, out, err = _cli(["rl", "--model", str(tiny_base_path), "--preflight", *small,
                         "--set", "rewards=[{name: cosine_length}]", "--set", "max_completion_length=48"], capsys)
    assert rc == 0, err
    assert "cosine_length" in out and "groups with zero reward variance" in out and "sample completions" in out
    assert list(tmp_path.iterdir()) == []
    # a stage without a GRPO loop has no such option
    rc, _, err = _cli(["coldstart", "--preflight"], capsys)
    assert rc == 2 and "--preflight" in err
