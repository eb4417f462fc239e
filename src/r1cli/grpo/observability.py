"""What a GRPO run shows besides TRL's per-step metrics (each reward's mean/std, reward, completion lengths and
clipped share, `frac_reward_zero_std`, entropy, clip ratios, KL when `beta > 0`):

- `tokens_per_s` (prompt + completion tokens through the model) and `completion_tokens_per_s` (generated tokens)
  per logging window, wall clock, this process;
- every `log_completions_every` steps, a rich table of sample completions on stderr (one per prompt group, up to
  `num_completions_to_print`) and the whole latest generation batch appended to `<output>/samples.jsonl`;
- with `log_prompts`, the prompts of each training generation batch in `<output>/prompts.jsonl` (the data order).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


class Observer:
    """The run's throughput counters, the latest training generation batch and its sample logs."""

    def __init__(self, run_dir: Path, *, log_completions_every: int, log_prompts: bool):
        self.run_dir = run_dir  # samples.jsonl / prompts.jsonl go here
        self.log_completions_every = int(log_completions_every)
        self.log_prompts = bool(log_prompts)
        self.last_batch: dict[str, Any] | None = None
        self.samples_step = -1
        self.throughput_mark: tuple[float, float, float] | None = None  # (time, tokens seen, completion tokens)
        self.completion_tokens = 0.0

    # ---------------------------------------------------------------- generation batches

    def record_batch(
        self,
        step: int,
        inputs: list[dict[str, Any]],
        batch: dict[str, Any],
        rewards: torch.Tensor,
        rewards_per_func: torch.Tensor,
        *,
        is_main: bool,
    ) -> None:
        """A training generation batch for optimizer step `step` (this process's rows; `rewards` [B] and
        `rewards_per_func` [B, F] the same rows): count its tokens, log its prompts when asked, and keep it for
        the sample table."""
        self.completion_tokens += float(batch["completion_mask"].sum().item())
        if self.log_prompts and is_main:
            rec = {"step": step, "prompts": [str(x.get("question", x["prompt"])) for x in inputs]}
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "prompts.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        if not self.log_completions_every:
            return
        self.last_batch = {
            "generated_for_step": step,
            "prompt_ids": batch["prompt_ids"].detach().cpu(),
            "prompt_mask": batch["prompt_mask"].detach().cpu(),
            "completion_ids": batch["completion_ids"].detach().cpu(),
            "completion_mask": batch["completion_mask"].detach().cpu(),
            "reward": rewards.detach().cpu(),
            "rewards_per_func": rewards_per_func.detach().cpu(),
            "advantage": batch["advantages"].detach().cpu(),
        }

    # ---------------------------------------------------------------- throughput

    def start_clock(self, tokens_seen: float) -> None:
        """The first training step starts the first throughput window."""
        if self.throughput_mark is None:
            self.throughput_mark = (time.perf_counter(), float(tokens_seen), self.completion_tokens)

    def add_throughput(self, logs: dict[str, float], tokens_seen: float) -> None:
        """`tokens_per_s` and `completion_tokens_per_s` since the previous log, into `logs`."""
        now, seen = time.perf_counter(), float(tokens_seen)
        mark = self.throughput_mark
        if mark is not None and now > mark[0]:
            dt = now - mark[0]
            logs["tokens_per_s"] = (seen - mark[1]) / dt
            logs["completion_tokens_per_s"] = (self.completion_tokens - mark[2]) / dt
        self.throughput_mark = (now, seen, self.completion_tokens)

    # ---------------------------------------------------------------- samples

    def samples_due(self, step: int, is_main: bool) -> bool:
        """Every `log_completions_every` steps, once per step (the end-of-training log repeats the last step)."""
        every = self.log_completions_every
        if every and self.last_batch is not None and step % every == 0 and step != self.samples_step and is_main:
            self.samples_step = step
            return True
        return False

    def log_samples(
        self, step: int, tokenizer: Any, names: list[str], *, num_to_print: int | None, group_size: int
    ) -> list[dict[str, Any]]:
        """Decode the remembered generation batch -> rows {step, prompt, completion, reward, rewards, advantage,
        length}; append them all to `<run_dir>/samples.jsonl`, print `num_to_print` (default 4) of them as a rich
        table on stderr, and return the rows."""
        batch = self.last_batch
        assert batch is not None
        rows = []
        for i in range(batch["completion_ids"].size(0)):
            p = batch["prompt_ids"][i][batch["prompt_mask"][i].bool()].tolist()
            c = batch["completion_ids"][i][batch["completion_mask"][i].bool()].tolist()
            pf = batch["rewards_per_func"]
            rows.append(
                {
                    "step": step,
                    "generated_for_step": batch["generated_for_step"],
                    "prompt": tokenizer.decode(p, skip_special_tokens=False),
                    "completion": tokenizer.decode(c, skip_special_tokens=True),
                    "reward": _finite(batch["reward"][i].item()),
                    "rewards": {n: _finite(pf[i, j].item()) for j, n in enumerate(names)},
                    "advantage": float(batch["advantage"][i].item()),
                    "length": len(c),
                }
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "samples.jsonl", "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print_samples(rows, names, step=step, n=num_to_print or 4, group_size=group_size)
        return rows


def print_samples(rows: list[dict[str, Any]], names: list[str], *, step: int, n: int, group_size: int) -> None:
    """One completion from each of the first `n` groups (different prompts, not G samples of one) as a table."""
    if os.environ.get("R1CLI_QUIET") == "1":
        return
    from rich.table import Table

    from r1cli.console import err

    picked = [rows[i] for i in range(0, len(rows), group_size)][:n]
    table = Table(title=f"sample completions, step {step}", show_lines=True)
    table.add_column("prompt (end)", max_width=40, overflow="fold")
    table.add_column("completion", max_width=80, overflow="fold")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("advantage", justify="right")
    for r in picked:
        table.add_row(
            r["prompt"][-120:],
            r["completion"][:400],
            *[_fmt(r["rewards"].get(name)) for name in names],
            f"{r['advantage']:.2f}",
        )
    err().print(table)
