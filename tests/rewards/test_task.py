"""The accuracy reward judges rows of built-in tasks with the task's own verifier (as `r1 eval` does)."""

from __future__ import annotations

from r1cli.rewards import get_reward
from r1cli.tasks import get_task


def _c(ans: str) -> str:
    return f"<think>\nwork\n</think>\n<answer>\n{ans}\n</answer>"


def test_countdown_rows_use_the_task_verifier():
    row = get_task("countdown").generate("train", 1, seed=0)[0]
    target = row["target"]
    acc = get_reward("accuracy")
    cols = {k: [row[k]] * 3 for k in row}
    # an expression equal to the target that ignores the given numbers is wrong for countdown
    got = acc([_c(row["answer"]), _c(f"{target}"), _c("1+1")], **cols)
    assert got == [1.0, 0.0, 0.0]


def test_mixed_batch_task_and_math_rows():
    row = get_task("arith").generate("train", 1, seed=1)[0]
    acc = get_reward("accuracy")
    got = acc(
        [_c(row["answer"]), "so \\boxed{\\frac12}", _c("-999")],
        answer=[row["answer"], "0.5", row["answer"]],
        task=["arith", None, "arith"],
    )
    assert got == [1.0, 1.0, 0.0]
