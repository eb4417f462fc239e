"""Metrics of R1's evaluation protocol (paper §3), computed from per-problem records.

For each problem we hold k sampled completions with: a verdict (correct or not), a cluster id (math-equivalent
final answers share one, from `r1cli.grading.engine.cluster_answers`; None = no answer), a format score, a length
in tokens and a finish reason. From those:

- `pass@1`: mean correctness over the k samples, averaged over problems (the paper's pass@1 with k samples);
- `pass@k`: the unbiased estimator 1 - C(n-c, k) / C(n, k) of Chen et al. (2021), n samples, c correct;
- `cons@k`: majority vote. Samples vote for their answer's equivalence cluster (`\\frac12`, `0.5` and `1/2` vote
  together — not string equality as in lighteval's `maj_at_n`); samples without an answer do not vote. **Ties**
  go to the tied cluster whose first member comes earliest in sample order (sample index = generation order,
  fixed by the seed), so the result is deterministic. The vote is correct when that cluster's first member is
  correct; a problem where no sample has an answer counts as wrong;
- `format_rate`: mean of the `format` reward; `mean_length`/`median_length`: completion tokens;
  `truncation_rate`: share of samples that hit `max_new_tokens`.

Grading (`Grader`: answers extracted from the completion as written, judged by the task's verifier or math-verify,
clustered, format-scored) and `evaluate` (render, sample with `r1cli.generation.generate`, grade, summarise) are
shared by `r1 eval` and the held-out eval during `r1 rl` (`r1cli.grpo.heldout`).

Uncertainty: every metric except the median is a mean over problems of a per-problem score, so its standard error
is std/sqrt(N) over problems (samples of one problem are not independent); the 95% interval is a percentile
bootstrap over problems (1000 resamples, seeded), which also covers the median length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FinishReason = str


@dataclass
class ProblemResult:
    """The k graded samples of one problem (the lists are aligned by sample index)."""

    correct: list[bool] = field(metadata={"help": "Verdict per sample (an ungradable gold counts as False)."})
    clusters: list[int | None] = field(metadata={"help": "Equivalence cluster of each sample's answer (None: none)."})
    format: list[float] = field(default_factory=list, metadata={"help": "Format reward per sample."})
    n_tokens: list[int] = field(default_factory=list, metadata={"help": "Completion tokens per sample."})
    finish: list[str] = field(default_factory=list, metadata={"help": "stop or length per sample."})


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k)/C(n, k), as a stable product."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    # C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def majority_cluster(clusters: Sequence[int | None]) -> int | None:
    """Index of the representative sample of the winning cluster (its first member), or None if no sample has
    an answer. Ties: the cluster whose first member appears earliest wins."""
    first: dict[int, int] = {}
    count: dict[int, int] = {}
    for i, c in enumerate(clusters):
        if c is None:
            continue
        first.setdefault(c, i)
        count[c] = count.get(c, 0) + 1
    if not count:
        return None
    best = max(count, key=lambda c: (count[c], -first[c]))
    return first[best]


def cons_correct(clusters: Sequence[int | None], correct: Sequence[bool]) -> bool:
    """Whether the majority-vote answer is correct (see `majority_cluster`)."""
    i = majority_cluster(clusters)
    return bool(correct[i]) if i is not None else False


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error of the mean); se is 0 for fewer than 2 values."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(values) / n
    if n < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def bootstrap_ci(per_problem: Any, stat: str = "mean", n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval over problems. per_problem: [N] scores (stat mean) or [N, k] values (stat
    median: median of all values of the resampled problems)."""
    import numpy as np

    a = np.asarray(per_problem, dtype=float)
    N = a.shape[0]
    if N == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    per = a[0].size if a.ndim > 1 else 1
    chunk = max(1, min(n_boot, 20_000_000 // max(1, N * per)))
    stats = []
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, N, size=(b, N))
        s = a[idx]
        stats.append(s.mean(axis=1) if stat == "mean" else np.median(s.reshape(b, -1), axis=1))
        done += b
    v = np.concatenate(stats)
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def summarize(problems: Sequence[ProblemResult], *, k: int | None = None, seed: int = 0,
              n_boot: int = 1000) -> dict[str, Any]:
    """The metrics of one benchmark: {metric: value} plus `ci` {metric: {se, ci95}} and counts.

    `k` (default: the samples per problem) is the k of pass@k; cons@k uses all samples of each problem.
    """
    if not problems:
        raise ValueError("no problems to summarize")
    n = len(problems[0].correct)
    if n == 0 or any(len(p.correct) != n for p in problems):
        raise ValueError("every problem needs the same, non-zero number of samples")
    k = k or n
    scores: dict[str, list[float]] = {
        "pass@1": [sum(p.correct) / n for p in problems],
        "pass@k": [pass_at_k(n, sum(p.correct), k) for p in problems],
        "cons@k": [float(cons_correct(p.clusters, p.correct)) for p in problems],
    }
    if all(p.format for p in problems):
        scores["format_rate"] = [sum(p.format) / len(p.format) for p in problems]
    if all(p.n_tokens for p in problems):
        scores["mean_length"] = [sum(p.n_tokens) / len(p.n_tokens) for p in problems]
    if all(p.finish for p in problems):
        scores["truncation_rate"] = [sum(f == "length" for f in p.finish) / len(p.finish) for p in problems]
    out: dict[str, Any] = {"n_problems": len(problems), "k": n}
    ci: dict[str, Any] = {}
    for name, vals in scores.items():
        m, se = mean_se(vals)
        out[name] = m
        lo, hi = bootstrap_ci(vals, "mean", n_boot=n_boot, seed=seed)
        ci[name] = {"se": se, "ci95": [lo, hi]}
    if "mean_length" in scores:
        import statistics

        lengths = [p.n_tokens for p in problems]
        out["median_length"] = float(statistics.median(x for row in lengths for x in row))
        lo, hi = bootstrap_ci(lengths, "median", n_boot=n_boot, seed=seed) if len({len(r) for r in lengths}) == 1 \
            else (float("nan"), float("nan"))
        ci["median_length"] = {"se": None, "ci95": [lo, hi]}
    # the paper's names with the actual k (cons@64 for AIME), next to the fixed keys
    out[f"pass@{k}"] = out["pass@k"]
    out[f"cons@{n}"] = out["cons@k"]
    out["ci"] = ci
    return out


# ---------------------------------------------------------------------------------------------- grading


class Grader:
    """Grades the k completions of one problem into a samples.jsonl record."""

    def __init__(self, bench: Any):
        from r1cli.rewards import get_reward

        self.bench = bench
        self.format_fn = get_reward("format")

    def record(self, index: int, row: dict[str, Any], prompt: str, key: str, samples: Sequence[Any]) -> dict:
        from r1cli.grading.answers import extract_answer
        from r1cli.grading.engine import cluster_answers, grade
        from r1cli.prompts import as_written, prefilled_think

        prefix = prefilled_think(prompt)
        texts = [as_written(prefix, s.text) for s in samples]
        answers = [extract_answer(t) for t in texts]
        if self.bench.kind == "task":
            verdicts: list[bool | None] = [bool(self.bench.task.verify(row, a)) for a in answers]
        else:
            verdicts = grade(answers, [row["answer"]] * len(answers))
        clusters = cluster_answers(answers)
        fmt = self.format_fn(texts, answer=[row["answer"]] * len(texts))
        win = majority_cluster(clusters)
        return {
            "benchmark": self.bench.name,
            "index": index,
            "key": key,
            "problem": row["prompt"],
            "gold": row["answer"],
            "ungradable": any(v is None for v in verdicts),
            "cons_answer": answers[win] if win is not None else None,
            "cons_correct": bool(verdicts[win]) if win is not None else False,
            "samples": [
                {
                    "completion": s.text,
                    "answer": a,
                    "correct": bool(v),
                    "cluster": c,
                    "format": float(f or 0.0),
                    "n_tokens": s.n_tokens,
                    "finish_reason": s.finish_reason,
                }
                for s, a, v, c, f in zip(samples, answers, verdicts, clusters, fmt, strict=True)
            ],
        }


def problem_result(rec: dict[str, Any], *, generated: bool = True) -> ProblemResult:
    """A `Grader.record` -> its ProblemResult (`generated` False: oracle records have no lengths or finish reasons)."""
    s = rec["samples"]
    return ProblemResult(
        correct=[x["correct"] for x in s],
        clusters=[x["cluster"] for x in s],
        format=[x["format"] for x in s],
        n_tokens=[x["n_tokens"] for x in s] if generated else [],
        finish=[x["finish_reason"] for x in s] if generated else [],
    )


def evaluate(
    model: Any,
    tokenizer: Any,
    bench: Any,
    *,
    k: int,
    max_new_tokens: int,
    temperature: float = 0.6,
    top_p: float = 0.95,
    seed: int = 0,
    template: str = "auto",
    instruction: str | None = None,
    think_prefix: bool = False,
    batch_size: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """`r1 eval`'s protocol on one loaded benchmark (`r1cli.tasks.benchmarks.Benchmark`) with an in-memory model:
    prompts rendered by `r1cli.prompts.render_prompt`, k samples each from `r1cli.generation.generate`, graded by
    `Grader`, summarised by `summarize` (plus `ungradable`: problems whose gold the grader cannot parse)."""
    from r1cli.generation import generate
    from r1cli.prompts import render_prompt

    prompts = [
        render_prompt(row["prompt"], builtin_task=bench.kind == "task", tokenizer=tokenizer, template=template,
                      instruction=instruction, think_prefix=think_prefix)
        for row in bench.rows
    ]
    grader = Grader(bench)
    out = generate(model, tokenizer, prompts, n=k, temperature=temperature, top_p=top_p,
                   max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, progress=progress)
    recs = [grader.record(i, row, p, "", got) for i, (row, p, got) in enumerate(zip(bench.rows, prompts, out,
                                                                                      strict=True))]
    m = summarize([problem_result(r) for r in recs], seed=seed)
    m["ungradable"] = sum(bool(r["ungradable"]) for r in recs)
    return m
