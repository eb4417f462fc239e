"""Agreement of the accuracy reward and of plain math-verify with labelled answers; prints ONE JSON line on stdout.

Two case sets, each graded (a) by the `accuracy` reward, the prediction given as an R1-shaped completion
`<think>…</think><answer>PRED</answer>`, and (b) by plain `math_verify.verify(parse(gold), parse(pred))` with
math-verify's default extraction configs and timeouts. Agreement = share of cases where the verdict equals the label.

- `math_verify_cases`: math-verify 0.9.0's own test expectations (tests/data/math_verify_cases.jsonl; its `source`
  field names each case's test). A few expect non-default `verify` options (float precision, non-strict
  variables, set/relation comparison: `options` in the file) that contradict their default-option twins.
- `gsm8k_example_model_solutions`: GPT-3 chain-of-thought solutions of GSM8K test problems with OpenAI's
  correctness labels (bench/data/gsm8k_example_model_solutions.jsonl: lines 1-31 of openai/grade-school-math
  `grade_school_math/data/example_model_solutions.jsonl`, 4 models each; gold = the number after `A:` of the
  reference solution). Graded in two R1 shapes: the whole solution as the answer (`whole`), and the reasoning in
  the think block with only its last line (`A: 18`) as the answer (`split`).

Usage: PYTHONPATH=src .venv/bin/python bench/accuracy_agreement.py [--timeout-s 2.0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from r1cli.grading.engine import DEFAULT_TIMEOUT_S
from r1cli.rewards import get_reward

ROOT = Path(__file__).resolve().parents[1]
MV_CASES = ROOT / "tests" / "data" / "math_verify_cases.jsonl"
GSM8K_DUMP = ROOT / "bench" / "data" / "gsm8k_example_model_solutions.jsonl"
_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
_COMPARISON = {"precision", "strict", "allow_set_relation_comp"}  # verify() options; match_types only extracts


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def r1_whole(pred: str) -> str:
    return f"<think>\nLet me work it out.\n</think>\n<answer>\n{pred}\n</answer>"


def r1_split(solution: str) -> str:
    reasoning, _, last = solution.rpartition("\n")
    return f"<think>\n{reasoning}\n</think>\n<answer>\n{last}\n</answer>"


def plain_verdicts(golds: list[str], preds: list[str]) -> list[bool]:
    from math_verify import parse, verify

    return [bool(verify(parse(g), parse(p))) for g, p in zip(golds, preds, strict=True)]


def _agreement(verdicts: list, labels: list[bool]) -> float:
    return round(sum(bool(v) == y for v, y in zip(verdicts, labels, strict=True)) / len(labels), 4)


def _misses(verdicts: list, labels: list[bool], names: list[str]) -> list[str]:
    return [n for v, y, n in zip(verdicts, labels, names, strict=True) if bool(v) != y]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="The reward's per-item time limit."
    )
    args = ap.parse_args()
    accuracy = get_reward("accuracy", timeout_s=args.timeout_s)
    accuracy([r1_whole("1/2")], answer=["0.5"])  # start the grading pool before timing anything
    out: dict = {"bench": "accuracy_agreement", "reward_timeout_s": args.timeout_s}

    rows = _read_jsonl(MV_CASES)
    golds, preds = [r["gold"] for r in rows], [r["pred"] for r in rows]
    labels = [bool(r["expected"]) for r in rows]
    names = [r["source"].split(" ", 1)[1] for r in rows]
    t0 = time.perf_counter()
    ours = accuracy([r1_whole(p) for p in preds], answer=golds)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = plain_verdicts(golds, preds)
    plain_s = time.perf_counter() - t0
    out["math_verify_cases"] = {
        "n": len(rows),
        "expecting_non_default_comparison": sum(bool(set(r.get("options", {})) & _COMPARISON) for r in rows),
        "reward": _agreement(ours, labels),
        "plain_math_verify": _agreement(plain, labels),
        "reward_s": round(ours_s, 2),
        "plain_s": round(plain_s, 2),
        "reward_misses": _misses(ours, labels, names),
        "plain_misses": _misses(plain, labels, names),
    }

    rows = [
        {"line": r["line"], "model": m, "gold": r["gold"], **r[m]}
        for r in _read_jsonl(GSM8K_DUMP)
        for m in _MODELS
    ]
    golds, sols = [r["gold"] for r in rows], [r["solution"] for r in rows]
    labels = [bool(r["is_correct"]) for r in rows]
    names = [f"line {r['line']} {r['model']}" for r in rows]
    whole = accuracy([r1_whole(s) for s in sols], answer=golds)
    split = accuracy([r1_split(s) for s in sols], answer=golds)
    plain = plain_verdicts(golds, sols)
    out["gsm8k_example_model_solutions"] = {
        "n": len(rows),
        "labelled_correct": sum(labels),
        "reward_whole": _agreement(whole, labels),
        "reward_split": _agreement(split, labels),
        "plain_math_verify": _agreement(plain, labels),
        "reward_whole_misses": _misses(whole, labels, names),
        "reward_split_misses": _misses(split, labels, names),
        "plain_misses": _misses(plain, labels, names),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
