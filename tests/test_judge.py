"""The generative judge: verdict parsing, a remote judge behind a real local HTTP server, a local checkpoint."""

from __future__ import annotations

import re

import pytest

from chat_server import ChatServer
from r1cli.judge import Judge, JudgeConfig, parse_verdict, prediction_text


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("CORRECT", True),
        ("incorrect.", False),
        ("Yes", True),
        ("no", False),
        ("The student's answer matches the reference.\nCORRECT", True),
        ("At first it looks correct, but the sign is flipped.\nINCORRECT", False),
        ("The answer is not correct.", False),
        ("<think>\nIs 0.5 = 1/2? It looks incorrect... no wait, correct.\n</think>\nVerdict: **CORRECT**", True),
        ("<think>\nhmm, correct", None),  # unfinished reasoning
        ("Final: incorrect. (I first thought it was correct.)", False),
        ("\\boxed{\\text{correct}}", True),
        ("I cannot tell.", None),
        ("", None),
        ("There is no doubt this is wrong", False),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_prediction_text_prefers_extracted_answer():
    assert prediction_text("<think>\nlong\n</think>\nSo it is \\boxed{\\frac12}.") == "\\frac12"
    assert prediction_text("<think>\nx\n</think>\nThe capital is Paris.") == "The capital is Paris."
    long = "word " * 2000
    assert len(prediction_text(long, max_chars=100)) <= 110


def _grade(body: dict) -> str:
    """A careful grader: reads the reference and the student's answer out of the prompt and compares them (case- and
    space-insensitive); one question gets a reply without a verdict."""
    prompt = body["messages"][-1]["content"]
    ref = re.search(r"Reference answer:\n(.*?)\n\n", prompt, re.S).group(1)
    pred = re.search(r"Student's answer:\n(.*?)\n\n", prompt, re.S).group(1)
    if "mumble" in prompt:
        return "I would rather not say."
    if ref.strip().lower().replace(" ", "") == pred.strip().lower().replace(" ", ""):
        return "<think>\nThey match.\n</think>\nCORRECT"
    return "They differ.\nVerdict: INCORRECT"


def JudgeServer() -> ChatServer:  # noqa: N802
    return ChatServer(_grade)


def test_remote_judge_end_to_end():
    srv = JudgeServer()
    try:
        j = Judge(JudgeConfig(backend="remote", url=srv.url, model="judge-model", concurrency=2))
        got = j.judge(
            ["Capital of France?", "Name a prime.", "Say something.", "Colour of the sky?"],
            ["Paris", "7", "anything", "blue"],
            ["<think>\nhmm\n</think>\nThe capital is paris.", "<think>\nx\n</think>\n\\boxed{9}", "mumble",
             "Blue"],
        )
    finally:
        srv.close()
    assert got == [False, False, None, True]  # "the capital is paris" is not the bare reference: this grader is strict
    # concurrency 2: requests reach the server in either order
    assert any("Reference answer:\nParis" in p for p in srv.prompts) and "Student's answer:\n9" in "".join(srv.prompts)


def test_judge_config_validation():
    with pytest.raises(ValueError, match="judge.url"):
        JudgeConfig(backend="remote", model="m")
    with pytest.raises(ValueError, match="judge.model"):
        JudgeConfig(backend="local")
    assert not JudgeConfig().enabled


def test_local_judge_runs_a_checkpoint(tiny_base_path):
    j = Judge(JudgeConfig(backend="local", model=str(tiny_base_path), max_new_tokens=8))
    replies = j.replies(["What is 2+2?"], ["4"], ["4"])
    assert len(replies) == 1 and isinstance(replies[0], str)
    assert j.judge(["What is 2+2?"], ["4"], ["4"])[0] in (True, False, None)
    assert j.calls == 2
