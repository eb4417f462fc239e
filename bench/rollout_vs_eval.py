"""Step-0 RL rollout accuracy vs `r1 eval` on the same prompts and sampling settings. Prints ONE JSON line.

1. `r1 rl` with the tiny recipe on N train prompts (train_size = N, 16 prompts × G per step, N/16 steps = one
   epoch, every prompt once) at learning_rate 0, so every step's rollouts come from the step-0 policy;
   `log_completions_every: 1` writes every rollout with its rewards to samples.jsonl.
2. The same N rows (the stage's own `prompt_rows`) as a JSONL benchmark for `r1 eval` with k = G, the recipe's
   temperature and top-p, max_new_tokens = max_completion_length.
3. Accuracy of each, its standard error clustered by prompt, and the paired difference.

Usage: python bench/rollout_vs_eval.py --model runs/demo/base --out runs/<you>/rollout_vs_eval [--n 256]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path


def _r1(*args: str) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "R1CLI_QUIET": "1"}
    subprocess.run([sys.executable, "-m", "r1cli", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def _mean_se(per_prompt: list[float]) -> tuple[float, float]:
    n = len(per_prompt)
    m = sum(per_prompt) / n
    var = sum((x - m) ** 2 for x in per_prompt) / (n - 1)
    return m, math.sqrt(var / n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="runs/demo/base")
    ap.add_argument("--recipe", default="recipes/tiny/rl.yaml")
    ap.add_argument("--out", default="runs/rollout_vs_eval")
    ap.add_argument("--n", type=int, default=256, help="prompts (a multiple of 16)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    from r1cli.config_loader import load_config
    from r1cli.stages.rl import prompt_rows
    from r1cli.stages.rl_config import RLConfig

    cfg = load_config(RLConfig, recipe=a.recipe, overrides={"model": a.model, "train_size": a.n, "seed": a.seed})
    G = cfg.num_generations
    per_step = cfg.per_device_train_batch_size // G
    if a.n % per_step:
        raise SystemExit(f"--n must be a multiple of {per_step} (prompts per step)")

    class _NoRun:
        def add_input(self, ref):
            pass

    rows, builtin = prompt_rows(cfg, _NoRun())
    assert builtin
    bench = out / "prompts.jsonl"
    bench.write_text("".join(json.dumps({k: r[k] for k in ("prompt", "answer", "task")}) + "\n" for r in rows))

    t0 = time.perf_counter()
    _r1("rl", "--recipe", a.recipe, "--model", a.model, "--seed", str(a.seed), "--output", str(out / "rl0"),
        "--overwrite", "--set", f"train_size={a.n}", "--set", f"max_steps={a.n // per_step}",
        "--set", "learning_rate=0", "--set", "warmup_steps=0", "--set", "log_completions_every=1",
        "--set", "log_prompts=true", "--set", "save_steps=100000")
    t_rl = time.perf_counter() - t0
    t0 = time.perf_counter()
    _r1("eval", "--model", a.model, "--benchmark", str(bench), "--k", str(G), "--seed", str(a.seed),
        "--set", f"temperature={cfg.temperature}", "--set", f"top_p={cfg.top_p}",
        "--set", f"max_new_tokens={cfg.max_completion_length}", "--output", str(out / "eval"), "--overwrite")
    t_ev = time.perf_counter() - t0

    # rollouts: every row of every step; row i of a step's batch is prompt i of that step's prompts.jsonl record
    by_step = {}
    for line in (out / "rl0" / "prompts.jsonl").read_text().splitlines():
        rec = json.loads(line)
        by_step[rec["step"]] = rec["prompts"]
    consumed = [p for s in sorted(by_step) for p in by_step[s]]
    rl_acc: dict[str, list[float]] = {}
    row_in_step: dict[int, int] = {}
    for line in (out / "rl0" / "samples.jsonl").read_text().splitlines():
        s = json.loads(line)
        step = s["generated_for_step"]
        i = row_in_step.get(step, 0)
        row_in_step[step] = i + 1
        rl_acc.setdefault(by_step[step][i], []).append(float(s["rewards"]["accuracy"]))
    ev_acc: dict[str, list[float]] = {}
    for line in (out / "eval" / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        ev_acc[rec["problem"]] = [float(s["correct"]) for s in rec["samples"]]
    common = sorted(set(rl_acc) & set(ev_acc))
    rl_p = [sum(rl_acc[q]) / len(rl_acc[q]) for q in common]
    ev_p = [sum(ev_acc[q]) / len(ev_acc[q]) for q in common]
    rl_m, rl_se = _mean_se(rl_p)
    ev_m, ev_se = _mean_se(ev_p)
    d_m, d_se = _mean_se([x - y for x, y in zip(rl_p, ev_p, strict=True)])
    print(json.dumps({
        "bench": "rollout_vs_eval", "model": a.model, "recipe": a.recipe, "n_prompts": len(common), "G": G,
        "every_prompt_once": sorted(consumed) == sorted(r["prompt"] for r in rows for _ in range(G)),
        "rollouts_per_prompt": sorted({len(v) for v in rl_acc.values()}),
        "temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": cfg.max_completion_length,
        "rollout_accuracy": round(rl_m, 4), "rollout_se": round(rl_se, 4),
        "eval_accuracy": round(ev_m, 4), "eval_se": round(ev_se, 4),
        "paired_diff": round(d_m, 4), "paired_diff_se": round(d_se, 4),
        "rl_seconds": round(t_rl, 1), "eval_seconds": round(t_ev, 1),
    }))


if __name__ == "__main__":
    main()
