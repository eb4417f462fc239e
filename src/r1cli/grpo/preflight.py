"""Preflight check of a GRPO run: can its rewards give a gradient at all, before any update?

GRPO learns only from groups whose G completions score differently: a group with equal rewards has advantage 0
everywhere. A set-up where no group ever differs (the model never writes the answer format, the gold answers sit
in another column, the length cap cuts every answer off, a reward that is constant) trains for hours and moves
nothing. `run_preflight` samples G completions for N training prompts with the run's own `R1GRPOTrainer` (its
sampler, template, rewards and weights: TRL's generate-and-score path, the same call a training step makes) and
measures, per reward function: mean, std, share of rows it applies to, share of groups where it is constant; and
overall: share of groups with zero variance of the weighted total (what the advantages see), share of completions
with no extractable answer (`extract_answer` on the completion as written, pre-fill put back), share of prompts
whose gold answer the grader cannot parse (as `r1 eval` counts `ungradable`), mean completion length and
truncation rate, and three completions with their rewards (the best-scored one and the first of two other prompts).

`judge` turns the report into a verdict: every group flat -> `StageError` (exit 4: the config is valid, and only
running the model under it shows the failure); more than `preflight_max_zero_std` flat -> one warning line.

The check leaves the trainer as it found it: RNG states, TRL's metric buffers and token counter are restored, so a
run with the check trains exactly as one without it.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from typing import Any

import torch

from r1cli.console import log

N_SAMPLES = 3
SAMPLE_CHARS = 600


@contextlib.contextmanager
def _isolated(trainer: Any):
    """Run trainer rollouts without leaving a trace: RNG streams, metric/log buffers, token counter, model mode."""
    import numpy as np

    from r1cli.grpo.trl_private import restore_log_buffers, save_log_buffers

    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    buffers = save_log_buffers(trainer)
    tokens = trainer.state.num_input_tokens_seen
    training = trainer.model.training
    trainer.model.train()  # the mode TRL samples in during training (num_generations, not num_generations_eval)
    trainer._rollout_log = []
    try:
        yield trainer._rollout_log
    finally:
        trainer._rollout_log = None
        trainer._handoff.clear()
        trainer.last_scored = None
        trainer.model.train(training)
        trainer.state.num_input_tokens_seen = tokens
        restore_log_buffers(trainer, buffers)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def pick_rows(n_rows: int, n: int, seed: int) -> list[int]:
    """`n` distinct row indices of a dataset of `n_rows`, a seeded draw (a sorted dataset's head is no sample)."""
    return sorted(random.Random(f"r1cli:preflight:{seed}").sample(range(n_rows), min(n, n_rows)))


def run_preflight(trainer: Any, n_prompts: int, *, seed: int = 0) -> dict[str, Any]:
    """Sample `num_generations` completions for `n_prompts` training prompts with `trainer` (an `R1GRPOTrainer`
    built as the run builds it), score them with its rewards, and return the report (see the module docstring)."""
    from r1cli.grpo.loss import total_rewards, zero_variance_groups
    from r1cli.grpo.trl_private import tokenizer

    if trainer.accelerator.num_processes > 1:
        raise ValueError("the preflight check runs on a single process")
    data = trainer.train_dataset
    G = int(trainer.num_generations)
    rows = [dict(data[i]) for i in pick_rows(len(data), n_prompts, seed)]
    # the run's generation batch, in whole groups: the sampler sees batches of the size training gives it
    per_call = max(1, int(trainer.args.generation_batch_size or G) // G)
    raw, ids, texts, prompts = [], [], [], []
    t0 = time.perf_counter()
    with _isolated(trainer) as rollouts:
        for start in range(0, len(rows), per_call):
            chunk = rows[start : start + per_call]
            inputs = [dict(r) for r in chunk for _ in range(G)]
            raw.append(trainer._score_once(inputs).rewards_per_func.detach().float().cpu())
            rec = rollouts[-1]
            ids += rec["completion_ids"]
            texts += [_text(c) for c in rec["completions"]]
            prompts += [x["prompt"] for x in inputs]
            if len(rows) > per_call:  # a slow model: show progress between generation batches
                log(f"preflight: {start + len(chunk)}/{len(rows)} prompts sampled ({time.perf_counter() - t0:.0f} s)")
    seconds = time.perf_counter() - t0
    rewards = torch.cat(raw)  # [N·G, F], NaN where a function does not apply
    total = total_rewards(rewards, trainer.reward_weights)
    names = list(trainer.reward_func_names)
    weights = [float(w) for w in trainer.reward_weights.tolist()]
    per_func = {}
    for j, name in enumerate(names):
        col = rewards[:, j]
        ok = ~torch.isnan(col)
        per_func[name] = {
            "weight": weights[j],
            "mean": _num(col[ok].mean().item()) if ok.any() else None,
            "std": _num(col[ok].std().item()) if ok.sum() > 1 else None,
            "applies": ok.float().mean().item(),
            "zero_std_groups": zero_variance_groups(col, G).float().mean().item(),
        }
    flat = zero_variance_groups(total, G)
    eos = set(trainer.eos_token_ids) | {tokenizer(trainer).pad_token_id}
    lengths = [len(c) for c in ids]
    truncated = [not c or c[-1] not in eos for c in ids]
    written = [_as_written(p, t) for p, t in zip(prompts, texts, strict=True)]
    return {
        "prompts": len(rows),
        "generations": G,
        "completions": len(ids),
        "seconds": round(seconds, 2),
        "rewards": per_func,
        "total": {
            "mean": _num(total[~torch.isnan(total)].mean().item()) if (~torch.isnan(total)).any() else None,
            "zero_std_groups": flat.float().mean().item(),
            "flat_groups": int(flat.sum().item()),
            "groups": int(flat.numel()),
            "distinct_values": sorted({round(v, 6) for v in total.tolist() if not math.isnan(v)})[:8],
        },
        "no_answer": _share(_no_answer(written)),
        "ungradable_gold": _ungradable(rows),
        "mean_length": sum(lengths) / max(1, len(lengths)),
        "truncated": _share(truncated),
        "max_completion_length": trainer.max_completion_length,
        "samples": _samples(rows, written, rewards, total, names, G),
    }


def _text(c: Any) -> str:
    from r1cli.prompts import completion_text

    return completion_text(c)


def _as_written(prompt: Any, text: str) -> str:
    from r1cli.prompts import as_written, prefilled_think

    return as_written(prefilled_think(prompt), text) if isinstance(prompt, str) else text


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _no_answer(texts: list[str]) -> list[bool]:
    from r1cli.grading.answers import extract_answer

    return [extract_answer(t) is None for t in texts]


def _ungradable(rows: list[dict[str, Any]]) -> float | None:
    """Share of prompts with a gold answer the grader cannot use: blank, or unparseable by math-verify (rows of a
    built-in task are checked by the task's verifier and always count as gradable). Rows of `kind: general`
    (align's reward-model prompts) carry no gold and are left out; None when no row is left."""
    from r1cli.grading.engine import grade
    from r1cli.tasks import available_tasks

    graded = [r for r in rows if r.get("kind", "reasoning") != "general"]
    if not graded:
        return None
    math_rows = [r for r in graded if r.get("task") not in available_tasks()]
    verdicts = grade([None] * len(math_rows), [r.get("answer") for r in math_rows]) if math_rows else []
    return sum(v is None for v in verdicts) / len(graded)


def _samples(rows, texts, rewards, total, names, G) -> list[dict[str, Any]]:
    """The best-scored completion, then the first completion of the first two other prompts."""
    scores = torch.nan_to_num(total, nan=-math.inf)
    best = int(scores.argmax().item())
    picked = [best] + [g * G for g in range(len(rows)) if g != best // G][: N_SAMPLES - 1]
    out = []
    for i in picked:
        row = rows[i // G]
        out.append({
            "question": str(row.get("question", row.get("prompt", "")))[-SAMPLE_CHARS:],
            "gold": row.get("answer"),
            "completion": texts[i][:SAMPLE_CHARS],
            "rewards": {n: _num(rewards[i, j].item()) for j, n in enumerate(names)},
            "total": _num(total[i].item()),
        })
    return out


def judge(report: dict[str, Any], max_zero_std: float) -> None:
    """Stop (StageError, exit 4) when no prompt group has reward variance; one warning line when more than
    `max_zero_std` of them have none."""
    from r1cli.errors import StageError

    tot = report["total"]
    share, n = tot["zero_std_groups"], tot["groups"]
    if n and tot["flat_groups"] == n:
        values = tot["distinct_values"]
        scored = f"every completion scored {values[0]:g}" if len(values) == 1 else "each group's completions scored alike"
        gold = report["ungradable_gold"]
        raise StageError(
            f"preflight: all {n} prompt groups have equal rewards ({scored}): GRPO would learn nothing",
            hint=f"likely causes: the answer format never matched ({report['no_answer']:.0%} of completions have no "
            "extractable answer), the answer column holds the wrong field ("
            + ("no gold answers" if gold is None else f"{gold:.0%} ungradable gold")
            + f"), or max_completion_length={report['max_completion_length']} cuts answers off "
            f"({report['truncated']:.0%} truncated); preflight_prompts: 0 skips this check",
        )
    if share > max_zero_std:
        log(
            f"[yellow]preflight[/]: {share:.0%} of {n} prompt groups have equal rewards (> preflight_max_zero_std "
            f"{max_zero_std:g}): most steps carry little gradient; no answer in {report['no_answer']:.0%}, "
            f"truncated {report['truncated']:.0%}"
        )


def log_report(report: dict[str, Any]) -> None:
    """The report as a few r1 log lines (a real run: the full report is in preflight.json and the manifest)."""
    per = ", ".join(
        f"{n} {_f(r['mean'])} (flat in {r['zero_std_groups']:.0%} of groups)" for n, r in report["rewards"].items()
    )
    log(
        f"preflight: {report['prompts']} prompts x {report['generations']} in {report['seconds']:.0f}s: {per}; "
        f"groups with reward variance {1 - report['total']['zero_std_groups']:.0%}; no answer "
        f"{report['no_answer']:.0%}; ungradable gold {_pct(report['ungradable_gold'])}; length "
        f"{report['mean_length']:.0f} tokens, truncated {report['truncated']:.0%}"
    )


def print_report(report: dict[str, Any], *, as_json: bool = False) -> None:
    """`r1 rl --preflight`'s output on stdout: one JSON object, or tables."""
    from r1cli.console import emit_json, out

    if as_json:
        emit_json(report)
        return
    from rich.table import Table

    t = Table(
        title=f"r1 rl --preflight: {report['prompts']} prompts x {report['generations']} completions "
        f"({report['seconds']:.0f} s)",
        title_justify="left",
    )
    for c in ("reward", "weight", "mean", "std", "applies", "flat groups"):
        t.add_column(c, justify="left" if c == "reward" else "right")
    for name, r in report["rewards"].items():
        t.add_row(name, f"{r['weight']:g}", _f(r["mean"]), _f(r["std"]), f"{r['applies']:.0%}",
                  f"{r['zero_std_groups']:.0%}")
    tot = report["total"]
    t.add_row("total (weighted)", "", _f(tot["mean"]), "", "", f"{tot['zero_std_groups']:.0%}")
    out().print(t)
    out().print(
        f"groups with zero reward variance: {tot['flat_groups']}/{tot['groups']} ({tot['zero_std_groups']:.0%})\n"
        f"completions with no extractable answer: {report['no_answer']:.1%}\n"
        f"ungradable gold answers: {_pct(report['ungradable_gold'])}\n"
        f"mean completion length: {report['mean_length']:.1f} tokens; truncated at "
        f"{report['max_completion_length']}: {report['truncated']:.1%}"
    )
    s = Table(title="sample completions", show_lines=True, title_justify="left")
    s.add_column("question (end)", max_width=40, overflow="fold")
    s.add_column("gold", max_width=12, overflow="fold")
    s.add_column("completion", max_width=70, overflow="fold")
    s.add_column("rewards", justify="right")
    for x in report["samples"]:
        rw = "\n".join(f"{n} {_f(v)}" for n, v in x["rewards"].items()) + f"\ntotal {_f(x['total'])}"
        s.add_row(x["question"][-160:], str(x["gold"]), x["completion"][:400], rw)
    out().print(s)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "n/a (no gold answers)" if x is None else f"{x:.1%}"
