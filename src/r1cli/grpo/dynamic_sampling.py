"""DAPO dynamic sampling (arXiv 2503.14476) on TRL's scored generation batches.

After a generation batch is scored, groups whose rewards are all equal (advantage 0 everywhere, no policy gradient)
are dropped; fresh prompts, drawn from the training set in a separate seeded order, are generated and scored until
the batch is full again or `max_resample_tries` rounds have run. A batch still short after that is completed with
dropped groups (advantage 0) and the shortfall is logged. Metrics: `dynamic_sampling/zero_std_share` (first
round), `dynamic_sampling/rounds`, `dynamic_sampling/unfilled_share`. Single process only.

The refill order is a permutation per epoch (seed + 7919·(epoch + 1)), independent of TRL's sampler; its position
is saved with each checkpoint (`dynamic_sampling_state.json`) so a resumed run continues the same stream.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from r1cli.grpo.loss import zero_variance_groups
from r1cli.grpo.trl_private import RIGHT_PADDED, completion_mask

STATE_FILE = "dynamic_sampling_state.json"


class Scored(NamedTuple):
    """One scored generation batch: TRL's batch (this process's rows) and the rewards TRL does not return."""

    batch: dict[str, Any]
    rewards_per_func: torch.Tensor  # [N, F] all processes, NaN where a function does not apply
    rewards: torch.Tensor  # [N] weighted total, NaN where no function applies


class DynamicSampler:
    """The refill stream over a map-style `dataset` and the drop-and-refill of `fill`."""

    def __init__(self, dataset: Any, *, seed: int, max_tries: int, num_processes: int):
        if num_processes > 1:
            raise ValueError("dynamic_sampling runs on a single process only")
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise ValueError("dynamic_sampling needs a map-style train_dataset (not an IterableDataset)")
        self.dataset = dataset
        self.seed = int(seed)
        self.max_tries = int(max_tries)
        self.order: list[int] | None = None
        self.epoch = 0
        self.position = 0

    # ---------------------------------------------------------------- refill stream

    def permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + 7919 * (epoch + 1))
        return torch.randperm(len(self.dataset), generator=g).tolist()

    def draw(self, n_prompts: int, G: int) -> list[dict[str, Any]]:
        """n_prompts fresh training rows, each repeated G times, continuing the seeded stream across epochs."""
        rows: list[dict[str, Any]] = []
        for _ in range(n_prompts):
            if self.order is None:
                self.order = self.permutation(self.epoch)
            if self.position >= len(self.order):
                self.epoch, self.position = self.epoch + 1, 0
                self.order = self.permutation(self.epoch)
            row = self.dataset[self.order[self.position]]
            self.position += 1
            rows.extend(dict(row) for _ in range(G))
        return rows

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.order = self.permutation(self.epoch)

    def save(self, checkpoint: str) -> None:
        with open(os.path.join(checkpoint, STATE_FILE), "w") as f:
            json.dump(self.state(), f)

    def load(self, checkpoint: str) -> None:
        """The stream position saved with `checkpoint`, if it has one."""
        path = os.path.join(checkpoint, STATE_FILE)
        if os.path.exists(path):
            with open(path) as f:
                self.load_state(json.load(f))

    # ---------------------------------------------------------------- drop and refill

    def fill(
        self, scored: Scored, score: Callable[[list[dict[str, Any]]], Scored], G: int, metrics: dict, pad_id: int
    ) -> Scored:
        """`scored` with its zero-variance groups replaced by groups of fresh prompts scored by `score` (TRL's
        generate-and-score), as many as `max_tries` extra rounds find; the same number of rows."""
        rewards = scored.rewards
        n_groups = rewards.numel() // G
        flat = zero_variance_groups(rewards, G)
        metrics["dynamic_sampling/zero_std_share"].append(flat.float().mean().item())
        keep = (~flat).nonzero().squeeze(1).tolist()
        parts = [(scored, keep)]
        have, rounds, generated, good_total = len(keep), 0, n_groups, len(keep)
        while have < n_groups and rounds < self.max_tries:
            rounds += 1
            need = n_groups - have
            keep_rate = max(good_total / generated, 0.25)  # oversample by the share of useful groups seen so far
            n_new = min(n_groups, math.ceil(need / keep_rate))
            fresh = score(self.draw(n_new, G))
            good = (~zero_variance_groups(fresh.rewards, G)).nonzero().squeeze(1).tolist()
            generated, good_total = generated + n_new, good_total + len(good)
            parts.append((fresh, good[:need]))
            have += len(good[:need])
        metrics["dynamic_sampling/rounds"].append(float(rounds))
        short = n_groups - have
        metrics["dynamic_sampling/unfilled_share"].append(short / n_groups)
        if rounds == 0:
            return scored
        if short:
            parts.append((scored, flat.nonzero().squeeze(1).tolist()[:short]))
            from r1cli.console import log

            log(
                f"[yellow]dynamic sampling[/]: {short} of {n_groups} prompt groups still had equal rewards after "
                f"{rounds} extra round(s); kept them with advantage 0"
            )
        return join_groups(parts, G, pad_id)


def join_groups(parts: list[tuple[Scored, list[int]]], G: int, pad_id: int) -> Scored:
    """The chosen groups (indices of G contiguous rows) of several scored batches -> one scored batch: [B, ·]
    tensors re-padded to the widest part (prompts on the left, completions on the right), `num_items_in_batch`
    recounted; no `advantages` (the caller computes them for the joined batch)."""
    sel = []
    for scored, groups in parts:
        rows = torch.tensor([g * G + j for g in groups for j in range(G)], dtype=torch.long)
        sel.append((scored, rows))
    rewards = torch.cat([s.rewards[rows.to(s.rewards.device)] for s, rows in sel])
    per_func = torch.cat([s.rewards_per_func[rows.to(s.rewards_per_func.device)] for s, rows in sel])
    out: dict[str, Any] = {}
    for key, value in sel[0][0].batch.items():
        if key in ("advantages", "num_items_in_batch"):
            continue
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            raise ValueError(f"dynamic_sampling cannot join the batch field {key!r}")
        chunks = [s.batch[key][rows.to(s.batch[key].device)] for s, rows in sel]
        if value.dim() == 1:
            out[key] = torch.cat(chunks)
            continue
        width = max(c.size(1) for c in chunks)
        if key == "prompt_ids" or key == "prompt_mask":
            fill = pad_id if key == "prompt_ids" else 0
            chunks = [torch.nn.functional.pad(c, (width - c.size(1), 0), value=fill) for c in chunks]
        elif key == "completion_ids":
            chunks = [torch.nn.functional.pad(c, (0, width - c.size(1)), value=pad_id) for c in chunks]
        elif key in RIGHT_PADDED:
            chunks = [torch.nn.functional.pad(c, (0, width - c.size(1)), value=RIGHT_PADDED[key]) for c in chunks]
        else:
            raise ValueError(f"dynamic_sampling cannot join the batch field {key!r}")
        out[key] = torch.cat(chunks)
    out["num_items_in_batch"] = completion_mask(out).sum()
    return Scored(out, per_func, rewards)
