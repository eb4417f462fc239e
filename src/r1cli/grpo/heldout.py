"""Held-out task eval during GRPO (`eval_every`): TRL evaluates GRPO only by its own loss and rewards on an eval
dataset, never by the task metric, so this callback runs `r1 eval`'s protocol on a held-out set every N steps.

Protocol (`r1cli.evaluation.evaluate`, the code `r1 eval` grades with): `eval_k` samples per problem at
temperature 0.6 and top-p 0.95 from `r1cli.generation.generate`, the run's template, instruction and pre-fill;
pass@1 (mean over the k samples), cons@k, format rate, mean length and truncation rate. Every eval draws its
samples with the same seed, so two evals differ by the policy, not by sampling luck.

Held-out set: `eval_input` as `r1 eval --benchmark` takes it; by default the built-in task the prompts come from,
its test split (the tasks have train and test splits only, disjoint by prompt hash; `eval_limit` problems drawn
with seed 0, as `r1 eval` draws them, so the numbers compare with a later `r1 eval --benchmark arith`).

When: before the first step, every `eval_every` optimizer steps, and at the last step. Results are logged through
the trainer's logger (`heldout/*` in metrics.jsonl and any tracker), plotted on the curves, the best step by
held-out pass@1 goes to the manifest (with its checkpoint when one was saved at that step), and an alarm line is
printed when the training reward rose while held-out pass@1 fell at two evals in a row (reward hacking or
over-fitting to the training prompts). Runs on the main process only; a resumed run reads its earlier evals back
from metrics.jsonl.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from r1cli.console import log

TEMPERATURE = 0.6  # R1's evaluation protocol (paper §3)
TOP_P = 0.95
KEYS = ("pass@1", "cons@k", "format_rate", "mean_length", "truncation_rate")
PREFIX = "heldout/"


def load_heldout(cfg: Any, stage: str, train_questions: list[str] | None = None) -> Any:
    """The held-out `Benchmark` of a GRPO run with `eval_every` (ConfigError when none can be derived)."""
    from r1cli.data_io import prompt_source
    from r1cli.errors import ConfigError, InputArtifactError
    from r1cli.tasks import available_tasks
    from r1cli.tasks.benchmarks import load_benchmark

    source = prompt_source(cfg, stage)
    spec = cfg.eval_input
    if not spec:
        if source not in available_tasks():
            raise ConfigError(
                f"eval_every needs eval_input when the prompts come from a dataset ({source!r})",
                hint="e.g. --set eval_input=gsm8k (anything `r1 eval --benchmark` takes: a name, a JSONL file)",
            )
        spec = f"{source}:validation"  # the best checkpoint is chosen on validation; results report test
    p = Path(str(spec)).expanduser()
    if p.suffix.lower() in (".jsonl", ".json", ".parquet", ".csv") and not p.exists():
        raise InputArtifactError(f"eval_input file {str(spec)!r} does not exist", hint="check the path")
    params = cfg.task_params if str(spec).partition(":")[0] == source and source in available_tasks() else None
    bench = load_benchmark(spec, limit=cfg.eval_limit, seed=0, task_params=params or None)
    if not bench.rows:
        raise InputArtifactError(f"eval_input {spec!r} has no problems", hint="pick another held-out set")
    seen = set(train_questions or ())
    leaked = sum(r["prompt"] in seen for r in bench.rows)
    if leaked:
        log(f"[yellow]held-out eval[/]: {leaked} of {len(bench.rows)} problems of {bench.name} are also training "
            "prompts: that part of the score is not held out")
    log(f"held-out eval: {len(bench.rows)} problems of {bench.name} ({bench.source}), k={cfg.eval_k}, "
        f"every {cfg.eval_every} steps")
    return bench


def reward_up_heldout_down(history: list[dict[str, Any]]) -> bool:
    """True when, over the last three evals, the training reward rose twice in a row while held-out pass@1 fell
    twice in a row. Each entry: {pass@1, train_reward (mean logged reward since the previous eval, None before)}."""
    if len(history) < 3:
        return False
    a, b, c = history[-3:]
    rewards = [a.get("train_reward"), b.get("train_reward"), c.get("train_reward")]
    if any(r is None for r in rewards):
        return False
    return rewards[0] < rewards[1] < rewards[2] and a["pass@1"] > b["pass@1"] > c["pass@1"]


class HeldoutEval(TrainerCallback):
    """Runs `r1cli.evaluation.evaluate` on `bench` with the policy every `every` steps (see the module docstring).
    `bind(trainer)` before training: results are logged through the trainer."""

    def __init__(self, bench: Any, tokenizer: Any, cfg: Any):
        self.bench = bench
        self.tokenizer = tokenizer
        self.every = int(cfg.eval_every)
        self.k = int(cfg.eval_k)
        self.max_new_tokens = int(cfg.eval_max_new_tokens or cfg.max_completion_length)
        self.seed = int(cfg.seed)
        self.template, self.instruction, self.think_prefix = cfg.template, cfg.instruction, cfg.think_prefix
        self.evals: list[dict[str, Any]] = []
        self.rewards: list[tuple[int, float]] = []  # (step, training reward) as logged
        self.alarms: list[int] = []
        self._unchecked = False  # an eval whose step's training reward is not logged yet
        self.trainer: Any = None

    def bind(self, trainer: Any) -> HeldoutEval:
        self.trainer = trainer
        return self

    def restore(self, rows: list[dict[str, Any]], upto: int) -> None:
        """A resumed run: the evals and training rewards logged up to step `upto` (metrics.jsonl rows)."""
        self.evals, self.rewards = [], []
        for r in rows:
            step = int(r.get("step", 0))
            if step > upto:
                continue
            if _finite(r.get("reward")):
                self.rewards.append((step, float(r["reward"])))
            if _finite(r.get(PREFIX + "pass@1")):
                self.evals.append({"step": step, **{k: r.get(PREFIX + k) for k in KEYS},
                                   "pass@1_se": r.get(PREFIX + "pass@1_se")})

    @property
    def history(self) -> list[dict[str, Any]]:
        """The evals, each with `train_reward`: the mean training reward logged at the steps since the previous
        eval, up to and including its own step (None when none was logged)."""
        out, prev = [], -1
        for e in self.evals:
            got = [r for s, r in self.rewards if prev < s <= e["step"]]
            out.append({**e, "train_reward": sum(got) / len(got) if got else None})
            prev = e["step"]
        return out

    # -- TrainerCallback ------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and not any(e["step"] == state.global_step for e in self.evals):
            self._evaluate(model, state.global_step)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and _finite(logs.get("reward")):
            self.rewards.append((state.global_step, float(logs["reward"])))
            # an eval runs at the end of its step, before that step's training log: check the trend once it is in
            if self._unchecked and self.evals and state.global_step >= self.evals[-1]["step"]:
                self._check_trend()
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if state.is_world_process_zero and (step % self.every == 0 or step == state.max_steps):
            self._evaluate(model, step)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self._unchecked:
            self._check_trend()
        return control

    # -- internals ------------------------------------------------------------------------------------------
    def _evaluate(self, model: Any, step: int) -> None:
        import time

        from r1cli.evaluation import evaluate

        t0 = time.perf_counter()
        m = evaluate(
            model, self.tokenizer, self.bench, k=self.k, max_new_tokens=self.max_new_tokens,
            temperature=TEMPERATURE, top_p=TOP_P, seed=self.seed, template=self.template,
            instruction=self.instruction, think_prefix=self.think_prefix,
        )
        se = m["ci"]["pass@1"]["se"]
        entry = {"step": step, **{k: m.get(k) for k in KEYS}, "pass@1_se": se}
        self.evals.append(entry)
        self._unchecked = True
        logs = {PREFIX + k: v for k, v in entry.items() if k in KEYS and v is not None}
        logs[PREFIX + "pass@1_se"] = se
        logs[PREFIX + "seconds"] = round(time.perf_counter() - t0, 2)
        if self.trainer is not None:
            from transformers import Trainer

            # the plain Trainer.log: TRL's would fold (and clear) the step's pending training metrics into this record;
            # its on_log clears control.should_log, which the step's own training log still needs
            should_log = self.trainer.control.should_log
            Trainer.log(self.trainer, logs)
            self.trainer.control.should_log = should_log
        best = self.best()
        fmt = f", format {entry['format_rate']:.2f}" if entry.get("format_rate") is not None else ""
        log(f"held-out {self.bench.name} at step {step}: pass@1 {entry['pass@1']:.3f} ± {se:.3f}, "
            f"cons@{self.k} {entry['cons@k']:.3f}{fmt} (best: step {best['step']}, {best['pass@1']:.3f})")

    def _check_trend(self) -> None:
        self._unchecked = False
        hist = self.history
        if not reward_up_heldout_down(hist):
            return
        a, b, c = hist[-3:]
        self.alarms.append(c["step"])
        log(f"[red]held-out alarm[/]: training reward rose ({a['train_reward']:.3f} -> {b['train_reward']:.3f} -> "
            f"{c['train_reward']:.3f}) while held-out pass@1 fell ({a['pass@1']:.3f} -> {b['pass@1']:.3f} -> "
            f"{c['pass@1']:.3f}) at steps {a['step']}, {b['step']}, {c['step']}: reward hacking or over-fitting; "
            f"best held-out so far: step {self.best()['step']}")

    def best(self) -> dict[str, Any]:
        """The eval with the highest held-out pass@1 (the earliest of ties)."""
        return max(self.evals, key=lambda h: (h["pass@1"], -h["step"]))

    def summary(self, output_dir: str | Path | None, model_dir: str | Path | None, final_step: int) -> dict:
        """The manifest's `heldout` block: every eval, the best step, its checkpoint (a checkpoint folder saved at
        that step, or the final model when it is the last step; None when neither holds those weights)."""
        if not self.evals:
            return {}
        best = self.best()
        ckpt = Path(output_dir) / f"checkpoint-{best['step']}" if output_dir else None
        if ckpt is not None and ckpt.is_dir():
            where: str | None = str(ckpt)
        elif best["step"] == final_step and model_dir is not None:
            where = str(model_dir)
        else:
            where = None
        return {
            "benchmark": self.bench.name,
            "source": self.bench.source,
            "problems": len(self.bench.rows),
            "k": self.k,
            "best_step": best["step"],
            "best_pass@1": best["pass@1"],
            "best_checkpoint": where,
            "alarms": list(self.alarms),
            "evals": list(self.history),
        }


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
