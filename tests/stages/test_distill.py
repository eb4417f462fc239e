"""`r1 distill`: trace selection (grading, filters, dedup, cap), the generate-only -> train-only chain on the tiny-test
base (teacher and student), resume equality of the trace log, a real local OpenAI-compatible endpoint as the
teacher, and the one-line config errors."""

from __future__ import annotations

import contextlib
import io
import json
import re
from types import SimpleNamespace

import pytest

from chat_server import ChatServer
from r1cli.config_loader import build


def _select_cfg(**kw):
    from r1cli.filters import ReadabilityFilters

    base = dict(keep_truncated=False, keep_ungraded=True, max_per_prompt=None, filters=ReadabilityFilters())
    base.update(kw)
    return SimpleNamespace(**base)


def _t(text, finish="stop"):
    return {"text": text, "n_tokens": len(text.split()), "finish_reason": finish}


def test_select_traces_keeps_correct_readable_distinct():
    from r1cli.stages.distill import select_traces
    from r1cli.tasks import get_task

    task = get_task("arith")
    row = task.generate("train", 1, seed=0)[0]
    good = task.solution(row, "detailed")
    wrong = good.replace(f"<answer>\n{row['answer']}\n</answer>", "<answer>\n999\n</answer>")
    fenced = good.replace("Step by step:", "Step by step:\n```\nx = 1\n```")
    rows = [row, {"prompt": "Say hi.", "answer": None}, {"prompt": "Half of one?", "answer": "1/2"}]
    traces = [
        [_t(good), _t(good), _t(wrong), _t(good, "length"), _t(f"<answer>\n{row['answer']}\n</answer>"),
         _t(fenced), _t(task.solution(row, "terse"))],
        [_t("<think>\nA greeting.\n</think>\n<answer>\nhi\n</answer>")],
        [_t("<think>\nhalf\n</think>\nThe answer is \\boxed{0.5}."), _t("<think>\nhalf\n</think>\n\\boxed{2}")],
    ]
    kept, counts = select_traces(_select_cfg(), rows, traces)
    r = counts["rejected"]
    assert (r["duplicate"], r["incorrect"], r["truncated"], r["format"], r["code_block"]) == (1, 2, 1, 1, 1)
    assert [k["completion"] for k in kept] == [good, task.solution(row, "terse"), traces[1][0]["text"],
                                               traces[2][0]["text"]]
    assert [k["teacher_correct"] for k in kept] == [True, True, None, True]
    assert kept[0]["terms"] == row["terms"] and kept[0]["source_index"] == 0  # source columns carried over
    assert counts["graded"] == 9 and counts["kept"] == 4 and counts["prompts_with_a_kept_trace"] == 3
    # a cap per prompt, and dropping prompts without a gold
    kept, counts = select_traces(_select_cfg(max_per_prompt=1, keep_ungraded=False), rows, traces)
    assert counts["rejected"]["over_cap"] == 1 and counts["rejected"]["no_gold"] == 1 and len(kept) == 2


# ---------------------------------------------------------------------------------------------- end to end


def _cfg(model, out, **kw):
    from r1cli.stages.distill_config import DistillConfig

    values = {
        "model": str(model), "teacher": str(model), "output": str(out), "num_traces": 2, "max_new_tokens": 24,
        "temperature": 1.0, "per_device_train_batch_size": 8, "learning_rate": 1e-3, "max_length": 128,
        "save_steps": 2, "logging_steps": 1, "disable_tqdm": True, "decontaminate_against": ["arith"],
        # the tiny-test base writes no R1 shape yet (nor an EOS within 24 tokens on these prompts): test the
        # pipeline, not its prose
        "filters": {"require_format": False, "max_repetition": None, "max_language_mixing": None},
        "keep_truncated": True,
    }
    values.update(kw)
    return build(DistillConfig, values)


def _run(cfg, resume=False):
    from r1cli.commands.common import execute
    from r1cli.stages import distill

    return execute("distill", distill, cfg, "model", resume=resume, overwrite=False, as_json=True)


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    """Questions without gold answers, plus one prompt that is a built-in arith test problem (contaminated)."""
    from r1cli.tasks import get_task

    test_prompt = get_task("arith").generate("test", 1, seed=0)[0]["prompt"]
    rows = [{"question": f"Count from {i} to {i + 3}."} for i in range(6)] + [{"question": test_prompt}]
    p = tmp_path_factory.mktemp("prompts") / "q.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    return p


@pytest.mark.slow
def test_generate_only_then_train_only_and_resume(tiny_base_path, prompt_file, tmp_path):
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM

    gen = tmp_path / "traces"
    man = _run(_cfg(tiny_base_path, gen, input=str(prompt_file), columns={"prompt": "question"},
                    generate_only=True))
    assert man["kind"] == "dataset" and man["status"] == "complete" and not (gen / "model").exists()
    c = man["metrics"]["traces"]
    assert c["decontaminated_prompts"] == 1 and c["prompts"] == 6 and c["generated"] == 12 and c["graded"] == 0
    assert c["kept"] == 12 - sum(c["rejected"].values()) > 0
    assert [i["name"] for i in man["inputs"]] == ["teacher", "input"]
    ds = load_from_disk(str(gen / "data"))
    assert len(ds) == c["kept"] and {"prompt", "completion", "answer", "teacher_correct"} <= set(ds.column_names)
    assert all(d.startswith("data/") for d in man["outputs"])

    # kill mid-way (torn log, no manifest) then --resume: the same rows, none lost or duplicated
    log_lines = (gen / "traces.jsonl").read_text().splitlines(keepends=True)
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "config.yaml").write_text((gen / "config.yaml").read_text())
    (cut / "traces.jsonl").write_text("".join(log_lines[:3]) + log_lines[3][:20])
    man2 = _run(_cfg(tiny_base_path, cut, input=str(prompt_file), columns={"prompt": "question"},
                     generate_only=True), resume=True)
    assert load_from_disk(str(cut / "data")).to_list() == ds.to_list()
    assert man2["metrics"]["traces"] == c
    from r1cli.errors import UsageError

    with pytest.raises(UsageError, match="another model, prompt or sampling protocol"):
        _run(_cfg(tiny_base_path, cut, input=str(prompt_file), columns={"prompt": "question"}, temperature=0.5,
                  generate_only=True), resume=True)

    # train the student on the trace run
    stu = tmp_path / "student"
    man3 = _run(_cfg(tiny_base_path, stu, input=str(gen), train_only=True, teacher=None))
    assert man3["kind"] == "model" and man3["metrics"]["train"]["rows"] == c["kept"]
    assert man3["metrics"]["teacher"] == str(tiny_base_path)
    AutoModelForCausalLM.from_pretrained(stu / "model")


@pytest.mark.slow
def test_nothing_correct_is_a_stage_error(tiny_base_path, tmp_path):
    """Built-in arith prompts have gold answers; the untrained tiny-test teacher gets none right."""
    from r1cli.errors import StageError

    with pytest.raises(StageError, match="no trace passed the selection .*incorrect"):
        _run(_cfg(tiny_base_path, tmp_path / "d", input="arith", num_prompts=3))
    assert (tmp_path / "d" / "traces.jsonl").is_file() and not (tmp_path / "d" / "manifest.json").exists()


# ---------------------------------------------------------------------------------------------- remote teacher


def _teach(body: dict) -> dict:
    """`What is A+B?` gets a correct trace for even seeds and a wrong one for odd seeds; the reasoning comes back in
    `reasoning_content` as R1's API returns it."""
    a, b = map(int, re.findall(r"(\d+)\+(\d+)", body["messages"][-1]["content"])[0])
    ans = a + b + (body.get("seed", 0) % 2)
    return {"role": "assistant", "reasoning_content": f"{a} plus {b} makes {ans}.",
            "content": f"The answer is \\boxed{{{ans}}}."}


def TeacherServer() -> ChatServer:  # noqa: N802
    return ChatServer(_teach, model="teacher-r1")


@pytest.mark.slow
def test_endpoint_teacher_distills_only_correct_traces(tiny_base_path, tmp_path):
    from datasets import load_from_disk

    p = tmp_path / "sums.jsonl"
    p.write_text("\n".join(json.dumps({"q": f"What is {i}+{i + 2}?", "a": str(2 * i + 2)}) for i in range(5)))
    srv = TeacherServer()
    try:
        man = _run(_cfg(tiny_base_path, tmp_path / "d", teacher=srv.url, input=str(p),
                        columns={"prompt": "q", "answer": "a"}, num_traces=2, decontaminate=False,
                        filters={}, teacher_concurrency=4))
    finally:
        srv.close()
    c = man["metrics"]["traces"]
    assert (c["generated"], c["graded"], c["kept"], c["rejected"]["incorrect"]) == (10, 10, 5, 5)
    assert c["teacher_accuracy"] == 0.5
    assert len(srv.bodies) == 10 and {b["model"] for b in srv.bodies} == {"teacher-r1"}
    assert srv.bodies[0]["messages"][0]["content"].endswith("within \\boxed{}.")  # R1's instruction appended
    rows = load_from_disk(str(tmp_path / "d" / "data")).to_list()
    assert rows[0]["completion"] == "<think>\n0 plus 2 makes 2.\n</think>\nThe answer is \\boxed{2}."
    assert man["inputs"][0] == {"name": "teacher", "spec": srv.url, "path": None, "kind": "endpoint",
                                "content_hash": None}
    assert man["metrics"]["train"]["rows"] == 5 and (tmp_path / "d" / "model" / "config.json").is_file()


# ---------------------------------------------------------------------------------------------- errors


def _cli(*args):
    from r1cli.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code, [ln for ln in err.getvalue().splitlines() if ln.strip()]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "generate_only=true", "--set", "train_only=true"], "exclude each other"),
        ([], "needs a teacher"),
        (["--set", "teacher=x", "--set", "num_traces=0"], "num_traces must be >= 1"),
        (["--set", "train_only=true"], "needs the trace dataset"),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path, args, message):
    code, lines = _cli("distill", "--input", "arith", "--output", tmp_path / "o", *args)
    if "trace dataset" in message:
        code, lines = _cli("distill", "--output", tmp_path / "p", *args)
    assert code == 2, lines
    assert message in lines[0] and lines[0].startswith("error:") and len(lines) <= 2
