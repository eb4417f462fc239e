"""`r1 align`: RL for all scenarios (paper §2.3.4) — GRPO on a mixture of reasoning prompts (rule rewards: accuracy,
format, language consistency) and general prompts (reward models: helpfulness on the final summary, harmlessness
on the whole response).

Reads top to bottom: load the policy -> build each mixture source (built-in tasks through `r1 rl`'s
`prompt_rows`, the built-in general prompts from `r1cli.tasks.preference`, or datasets), tag each row with its
`kind`, resample by mixture weight, render every prompt with the function `r1 eval` uses -> build the rewards of
`rewards_by_kind` and wrap each in `route` (None for rows of other kinds) -> `R1GRPOTrainer` -> save, metrics,
curves (as `r1 rl`).

Advantages stay per group: TRL repeats each prompt `num_generations` times, so a group is one prompt and one
kind; `R1GRPOTrainer` sums the rewards that apply to a row (`nansum` of the weighted rewards: None -> NaN) and
normalises per group, so a reasoning group is compared on rule rewards only and a general group on reward-model
scores only.

Departures from the paper: DeepSeek mixes its general data into the same RL stage with a reward model trained on
human preferences; here the embedded default's "general" prompts and preferences are synthetic
(`r1cli.tasks.preference`), so the reward model learns rules, not taste. The paper also applies the language
consistency reward only to reasoning data; list it under `reasoning` to do the same.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

from r1cli.console import log
from r1cli.errors import ConfigError, InputArtifactError
from r1cli.grpo.loop import preflight_only, train_grpo

# ------------------------------------------------------------------------------------------------ routing


def route(fn: Any, kinds: Sequence[str]) -> Any:
    """Wrap reward `fn` so it judges only rows whose `kind` column is in `kinds` (others: None, never passed to
    `fn`). Column lists are cut to the judged rows; the wrapper keeps `fn.__name__` (TRL's metric name).
    Without a `kind` column every row is judged."""
    allowed = frozenset(kinds)

    @functools.wraps(fn)
    def routed(completions: Sequence[Any], **columns: Any) -> list:
        n = len(completions)
        row_kinds = columns.get("kind")
        if row_kinds is None:
            return list(fn(completions, **columns))
        idx = [i for i, k in enumerate(row_kinds) if k in allowed]
        out: list[float | None] = [None] * n
        if not idx:
            return out
        sub = {
            key: [v[i] for i in idx] if isinstance(v, (list, tuple)) and len(v) == n else v
            for key, v in columns.items()
        }
        got = fn([completions[i] for i in idx], **sub)
        for i, v in zip(idx, got, strict=True):
            out[i] = v
        return out

    routed.__name__ = fn.__name__
    routed.__qualname__ = fn.__name__
    routed.kinds = sorted(allowed)  # type: ignore[attr-defined]
    return routed


def build_routed_rewards(cfg: Any) -> tuple[list[Any], list[float]]:
    """The rewards of `cfg.rewards` (derived from rewards_by_kind), each routed to its kinds, and their weights."""
    from r1cli.rewards import build_rewards

    funcs, weights = build_rewards(cfg.rewards)
    kinds = cfg.reward_kinds()
    return [route(f, kinds[f.__name__]) for f in funcs], weights


# ------------------------------------------------------------------------------------------------ prompts


def _source_rows(src: dict[str, Any], cfg: Any, run: Any) -> tuple[list[dict[str, Any]], bool]:
    """Rows of one mixture source (with `kind`) and whether they are built-in (rendered without instruction)."""
    from r1cli.tasks import available_tasks

    name = str(src["input"])
    n = src.get("n")
    if name == "general":
        from r1cli.tasks.preference import general_rows

        rows = general_rows("train", n or cfg.train_size, seed=cfg.seed, **(src.get("task_params") or {}))
        log(f"prompts: {len(rows)} built-in general prompts")
        return [dict(r, kind=src.get("kind") or "general") for r in rows], True
    kind = src.get("kind")
    if name in available_tasks() or kind == "reasoning":
        from r1cli.data_io import prompt_rows

        rows, builtin = prompt_rows(name, run=run, stage="align reasoning", task_n=n or cfg.train_size,
                                    seed=cfg.seed, columns=src.get("columns"), task_params=src.get("task_params"),
                                    require=("prompt", "answer"))
    else:
        from r1cli.data_io import load_dataset_input

        ds, ref = load_dataset_input(name, columns=src.get("columns") or {})
        run.add_input(ref)
        if "prompt" not in ds.column_names:
            raise InputArtifactError(
                f"align prompts need a prompt column; {name!r} has {', '.join(ds.column_names)}",
                hint="map your columns in the mixture entry, e.g. columns: {prompt: question}",
            )
        rows, builtin = ds.to_list(), False
    if n is not None and name not in available_tasks():
        rows = rows[:n]
    for r in rows:
        r["kind"] = kind or r.get("kind") or "reasoning"
    return rows, builtin


def _mix(parts: list[list[dict[str, Any]]], weights: list[float] | None, seed: int) -> list[dict[str, Any]]:
    """With weights, resample the sources so source i holds weight_i / sum(weights) of the total rows (cycling
    through a shuffled order when it needs more rows than it has); without, every row once. Then shuffle;
    deterministic by seed."""
    rng = random.Random(f"r1cli:align-mix:{seed}")
    total = sum(len(p) for p in parts)
    out: list[dict[str, Any]] = []
    for i, rows in enumerate(parts):
        target = len(rows) if weights is None else max(1, round(total * weights[i] / sum(weights)))
        order = list(range(len(rows)))
        rng.shuffle(order)
        out.extend(rows[order[i % len(rows)]] for i in range(target))
    rng.shuffle(out)
    return out


def build_prompts(cfg: Any, run: Any, tokenizer: Any) -> list[dict[str, Any]]:
    """The mixed, rendered prompt rows: every source's columns (missing ones None), `kind`, `question` (the raw
    prompt, which reward models read) and `prompt` (rendered like `r1 eval` renders it)."""
    from r1cli.prompts import render_prompt

    parts, weights = [], []
    for src in cfg.mixture:
        rows, builtin = _source_rows(src, cfg, run)
        default_instr = None if builtin or rows and rows[0]["kind"] != "reasoning" else cfg.instruction
        instr = src.get("instruction", default_instr)
        for r in rows:
            if r["kind"] not in cfg.rewards_by_kind:
                raise ConfigError(
                    f"rows of kind {r['kind']!r} (from {src['input']!r}) have no rewards",
                    hint=f"add rewards_by_kind.{r['kind']}, or set the source's kind",
                )
            q = r["prompt"]
            r["question"] = q
            r["prompt"] = render_prompt(q, builtin_task=builtin, tokenizer=tokenizer, template=cfg.template,
                                        instruction=instr, think_prefix=cfg.think_prefix)
        parts.append(rows)
        weights.append(float(src.get("weight", 1.0)))
    rows = _mix(parts, weights if any("weight" in src for src in cfg.mixture) else None, cfg.seed)
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    rows = [{k: r.get(k) for k in keys} for r in rows]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    log("prompt mixture: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return rows


# ------------------------------------------------------------------------------------------------ stage


def dry_run(cfg: Any, n: int, inputs: Any) -> Any:
    from r1cli.dryrun import sampling_dry_run
    from r1cli.models import load_tokenizer

    tok = load_tokenizer(cfg)
    return sampling_dry_run("align", cfg, tok, [r["prompt"] for r in build_prompts(cfg, inputs, tok)[:n]])


def _setup(cfg: Any, run: Any) -> tuple[Any, Any, Any, list[Any]]:
    from datasets import Dataset

    from r1cli.models import load_model, model_ref

    missing = cfg.missing_reward_model()
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} need a reward model",
            hint="set reward_model: RUN (e.g. an `r1 reward-model` output) or params.model on each",
        )
    funcs, weights = build_routed_rewards(cfg)  # before the policy loads: bad specs fail fast
    cfg.reward_weights = weights
    log("rewards: " + ", ".join(f"{f.__name__} ({'/'.join(f.kinds)})" for f in funcs) + f" (weights {weights})")
    run.add_input(model_ref(cfg.model))
    if cfg.reward_model:
        from r1cli.runs import resolve_input

        run.add_input(resolve_input(cfg.reward_model, "model", name="reward_model"))
    model, tokenizer = load_model(cfg, for_training=True)
    data = Dataset.from_list(build_prompts(cfg, run, tokenizer))
    return model, tokenizer, data, funcs


def preflight(cfg: Any, inputs: Any) -> dict[str, Any]:
    """`r1 align --preflight`: the preflight report of this config (nothing trained, nothing written)."""
    return preflight_only(cfg, *_setup(cfg, inputs))


def run(cfg: Any, run: Any) -> dict[str, Any]:
    model, tokenizer, data, funcs = _setup(cfg, run)
    names = [f.__name__ for f in funcs]
    result = train_grpo(cfg, run, model, tokenizer, data, funcs, title=f"r1 align: {cfg.model}",
                        curve_keys=["reward"] + [f"rewards/{n}/mean" for n in names] + ["completions/mean_length"],
                        stage="align")
    result["metrics"]["prompts"] = {k: sum(1 for x in data["kind"] if x == k) for k in sorted(set(data["kind"]))}
    return result
