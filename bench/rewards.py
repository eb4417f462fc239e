"""Benchmark the grading engine; prints ONE JSON line on stdout.

(a) Throughput (wall clock) and work (CPU seconds, parent + workers; robust to a loaded machine): 16 synthetic
    completions per MATH-500 gold answer (a deterministic mix of the gold as written, equivalent rewrites, repeated
    wrong answers, missing and hedged answers, in both the R1-Zero `<answer>` and the R1 chat `\\boxed{}` shapes),
    graded by `r1cli.grading.engine.grade_completions` versus the peer: the same answer extraction, then
    the gold parsed once per distinct gold (as any sensible caller would), then the prediction parsed and verified per
    pair (the worker's readings and hedging rule), in this process, with math-verify's default timeouts. Same run, same
    inputs; verdicts must be identical. The headline `speedup` is the engine on ONE worker process against the
    peer (what deduplication and shortcuts give); `speedup_parallel` is the engine's default pool (all cores).
    The pools are started (and the default one's start-up timed) before the timed runs, on other inputs.
(b) Oracle sanity on ../shared/data: MATH-500 reference solution's last `\\boxed{}` vs `answer`; GSM8K (test and
    train) final number after `####` in `solution` vs `answer`. Misses are listed.

Usage: .venv/bin/python bench/rewards.py [--data DIR] [--limit N] [--per-gold 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402
from r1cli.grading import engine  # noqa: E402
from r1cli.grading.answers import extract_answer, is_multi_part, last_boxed, normalize_gold  # noqa: E402

_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _read_jsonl(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


# --- synthetic completions ------------------------------------------------------------------------------------
def _rewrites(gold: str) -> list[str]:
    """Equivalent ways to write `gold` (only transformations that keep the value)."""
    out = []
    if "\\dfrac" in gold:
        out.append(gold.replace("\\dfrac", "\\frac"))
    m = re.fullmatch(r"(-?)\\d?frac\{(\d+)\}\{(\d+)\}", gold)
    if m:
        out.append(f"{m.group(1)}{m.group(2)}/{m.group(3)}")
        out.append(f"{m.group(1)}\\frac{{{int(m.group(2)) * 2}}}{{{int(m.group(3)) * 2}}}")
    if re.fullmatch(r"-?\d+", gold):
        out.append(gold + ".0")
        out.append(f"x = {gold}")
    if " " in gold:
        out.append(gold.replace(" ", ""))
    if "," in gold:
        out.append(gold.replace(",", ", "))
    return out or [gold]


def _wrongs(gold: str, others: list[str], rng: random.Random) -> list[str]:
    out = []
    m = re.search(r"\d+", gold)
    if m:
        n = int(m.group()) + 1
        out.append(gold[: m.start()] + str(n) + gold[m.end() :])
    out.append("-" + gold if not gold.startswith("-") else gold[1:])
    out.append(rng.choice(others))
    return out


def _completion(answer: str | None, rng: random.Random, hedge: str | None = None) -> str:
    reasoning = "Let me work through this step by step.\nFirst, we set up the equation.\nThen we simplify."
    if answer is None:
        return f"<think>\n{reasoning}\n</think>\nI could not finish the computation."
    if hedge is not None:
        return f"<think>\n{reasoning}\n</think>\nThe answer is $\\boxed{{{answer}}}$ or $\\boxed{{{hedge}}}$."
    if rng.random() < 0.5:
        return f"<think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer>"
    return f"<think>\n{reasoning}\n</think>\nSo the final answer is $\\boxed{{{answer}}}$."


def synthetic(golds: list[str], per_gold: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    completions, gold_col = [], []
    for gold in golds:
        p_correct = rng.random()
        rewrites, wrongs = _rewrites(gold), _wrongs(gold, golds, rng)
        for _ in range(per_gold):
            r = rng.random()
            if r < 0.05:
                c = _completion(None, rng)
            elif r < 0.08:
                c = _completion(gold, rng, hedge=rng.choice(wrongs))
            elif rng.random() < p_correct:
                c = _completion(gold if rng.random() < 0.7 else rng.choice(rewrites), rng)
            else:
                c = _completion(rng.choice(wrongs), rng)
            completions.append(c)
            gold_col.append(gold)
    return completions, gold_col


def peer_grade(completions: list[str], golds: list[str]) -> list[bool | None]:
    """The peer: extract as we do, parse each distinct gold once, then parse + verify every pair in this process,
    with the worker's readings and hedging rule (`r1cli.grading._mv_worker`) and math-verify's default timeouts."""
    from r1cli.grading._mv_worker import _gold_has_several_values, _hedges, _parse, _verify

    parsed: dict[str, list] = {}
    out: list[bool | None] = []
    for c, g in zip(completions, golds, strict=True):
        if g not in parsed:
            gs = normalize_gold(g)
            parsed[g] = _parse(gs, 5) if gs is not None else []
        gp = parsed[g]
        if not gp:
            out.append(None)
            continue
        pred = extract_answer(c)
        several = _gold_has_several_values(gp)
        if pred is None or (is_multi_part(pred) and not several):
            out.append(False)
            continue
        pp = _parse(pred, 5)
        out.append((several or not _hedges(pred, pp)) and _verify(gp, pp, 5))
    return out


# --- oracle sanity --------------------------------------------------------------------------------------------
def _gsm8k_final(solution: str) -> str | None:
    i = solution.rfind("####")
    return solution[i + 4 :].strip() if i >= 0 else None


def oracle(data: Path) -> dict:
    res: dict = {}
    rows = _read_jsonl(data / "math500.jsonl")
    preds = [last_boxed(r["solution"]) for r in rows]
    v = engine.grade(preds, [r["answer"] for r in rows])
    misses = [
        {"id": r["unique_id"], "answer": r["answer"], "boxed": p, "verdict": x}
        for r, p, x in zip(rows, preds, v, strict=True)
        if x is not True
    ]
    res["math500"] = {
        "n": len(rows),
        "accuracy": round(sum(x is True for x in v) / len(rows), 4),
        "misses": misses,
    }
    for split in ("test", "train"):
        path = data / f"gsm8k_{split}.jsonl"
        if not path.exists():
            continue
        rows = _read_jsonl(path)
        preds = [_gsm8k_final(r["solution"]) for r in rows]
        v = engine.grade(preds, [r["answer"] for r in rows])
        misses = [
            {"i": i, "answer": r["answer"], "final": p, "verdict": x}
            for i, (r, p, x) in enumerate(zip(rows, preds, v, strict=True))
            if x is not True
        ]
        res[f"gsm8k_{split}"] = {
            "n": len(rows),
            "accuracy": round(sum(x is True for x in v) / len(rows), 4),
            "misses": misses,
        }
    return res


def _workers_cpu(pool: engine.GradingPool) -> float:
    """CPU seconds used so far by the pool's worker processes (from /proc; they are not our children)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for w in pool.workers:
        try:
            fields = Path(f"/proc/{w.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=_DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=None, help="Use only the first N MATH-500 golds in (a).")
    ap.add_argument("--per-gold", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if not (args.data / "math500.jsonl").exists():
        sys.exit(f"bench/rewards.py needs {args.data}/math500.jsonl (the shared benchmark data)")

    machine = meta.machine()  # the load the run starts under
    golds = [r["answer"] for r in _read_jsonl(args.data / "math500.jsonl")][: args.limit]
    completions, gold_col = synthetic(golds, args.per_gold)

    t0 = time.perf_counter()
    engine.grade(["2"], ["\\frac{4}{2}"])  # start the pool (forkserver + workers) on other inputs
    startup_s = time.perf_counter() - t0

    pool = engine.get_pool()
    cpu0 = _workers_cpu(pool) + time.process_time()
    t0 = time.perf_counter()
    ours = engine.grade_completions(completions, gold_col)
    ours_s = time.perf_counter() - t0
    ours_cpu = _workers_cpu(pool) + time.process_time() - cpu0
    stats = engine.last_stats

    one = engine.GradingPool(n_workers=1)  # the same engine on one worker: what dedup + shortcuts alone give
    engine.grade(["2"], ["\\frac{4}{2}"], pool=one)
    cpu0 = _workers_cpu(one) + time.process_time()
    t0 = time.perf_counter()
    ours_one = engine.grade_completions(completions, gold_col, pool=one)
    one_s = time.perf_counter() - t0
    one_cpu = _workers_cpu(one) + time.process_time() - cpu0
    one.close()

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    theirs = peer_grade(completions, gold_col)
    peer_s = time.perf_counter() - t0
    peer_cpu = time.process_time() - cpu0

    diffs = [
        {"i": i, "gold": gold_col[i], "pred": extract_answer(completions[i]), "ours": a, "peer": b}
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
        if a != b
    ]
    result = {
        "bench": "rewards",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine,
        "throughput": {
            "items": len(completions),
            "golds": len(golds),
            "per_gold": args.per_gold,
            "peer": "extract, parse each distinct gold once, parse + verify each pair, one process",
            "speedup": round(peer_s / one_s, 2),
            "speedup_parallel": round(peer_s / ours_s, 2),
            "engine_1worker_s": round(one_s, 3),
            "engine_parallel_s": round(ours_s, 3),
            "peer_s": round(peer_s, 3),
            "engine_1worker_items_per_s": round(len(completions) / one_s, 1),
            "engine_parallel_items_per_s": round(len(completions) / ours_s, 1),
            "peer_items_per_s": round(len(completions) / peer_s, 1),
            "workers_parallel": engine.get_pool().n,
            "pool_startup_s": round(startup_s, 3),
            "engine_1worker_cpu_s": round(one_cpu, 3),
            "engine_parallel_cpu_s": round(ours_cpu, 3),
            "peer_cpu_s": round(peer_cpu, 3),
            "cpu_work_ratio_1worker": round(peer_cpu / one_cpu, 2),
            "cpu_work_ratio_parallel": round(peer_cpu / ours_cpu, 2),
            "identical_1worker": ours_one == ours,
            "engine_shortcut_items": stats.shortcut,
            "engine_pairs_compared": stats.compared,
            "engine_golds_parsed": stats.golds,
            "correct_share": round(sum(x is True for x in ours) / len(ours), 3),
            "identical_verdicts": not diffs,
            "verdict_diffs": diffs[:20],
            "worker_kills": engine.get_pool().kills,
        },
        "oracle": oracle(args.data),
    }
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
