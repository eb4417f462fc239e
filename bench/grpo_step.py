"""GRPO step time: `r1 rl`'s trainer (R1GRPOTrainer) against plain `trl.GRPOTrainer`, same model/data/config.

    .venv/bin/python bench/grpo_step.py [--model auto|tiny|tiny-test|random] [--steps 12] [--warmup 2]

Both trainers are built once and stepped by hand, one optimizer step each in turn (generate + score through
TRL's `_prepare_inputs`, loss, backward, AdamW), on the same prompts, alternating which goes first, so that load
from other processes on a shared machine falls on both alike. Prints ONE JSON line on stdout:
- `ratio`: the median over step pairs of (R1GRPOTrainer step time / plain GRPOTrainer step time), goal <= 0.7;
  also the ratio of the medians, of the minima (the least disturbed steps) and of process CPU time;
- `generation_share`: the share of a step spent generating (the profile that motivated the sampler), and the mean
  completion length each trainer saw (same model, same sampling distribution: they should agree);
- `loss_equal`: both trainers' `_compute_loss` on one identical scored batch (same completions, advantages of both
  signs, π_old off π_θ so clipping is active, reference log-probs with β = 0.04), each loss type: relative
  difference of the losses and of the gradients (float rounding only: the scoring forward differs).

Model (`--model auto`): the cached `tiny` base if it was built, else the `tiny-test` base (built and cached by
`r1cli.tinybase.ensure_base`), prompted with the built-in arith task in its chat format and scored by the
accuracy + format rewards; `random` is a randomly initialised Qwen2 of the tiny architecture (completions then run
to the length limit, so the sampler's early stop has nothing to save).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("R1CLI_QUIET", "1")


def load_model(which: str, seed: int) -> tuple[Any, Any, str, str | None]:
    """(model, tokenizer, description, folder or None)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1cli import tinybase

    if which == "auto":
        key = tinybase.preset_config("tiny").key(0)
        built = tinybase.is_complete(tinybase.cache_root() / "tinybase" / f"tiny-s0-{key[:16]}", key)
        which = "tiny" if built else "tiny-test"
    if which in ("tiny", "tiny-test"):
        path = tinybase.ensure_base(which, seed=0)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
        return model, tok, f"{which} base ({path.name})", str(path)
    if which == "random":
        import torch
        from transformers import Qwen2ForCausalLM

        from r1cli.tasks import get_task

        cfg = tinybase.preset_config("tiny")
        task = get_task("arith")
        texts = []
        for row in task.generate("train", 300, seed=1):
            texts += [
                f"user\n{row['prompt']}\nassistant\n",
                task.solution(row, "detailed"),
                task.solution(row, "terse"),
            ]
        tok = tinybase.train_tokenizer(texts, cfg.vocab_size)
        torch.manual_seed(seed)
        return (
            Qwen2ForCausalLM(tinybase.model_config(cfg, tok)),
            tok,
            "random Qwen2 (tiny architecture)",
            None,
        )
    raise SystemExit(f"unknown --model {which!r}")


def dataset(tok: Any, n: int) -> Any:
    from datasets import Dataset

    from r1cli.prompts import build_prompt
    from r1cli.tasks import get_task

    rows = get_task("arith").generate("train", n, seed=0)
    return Dataset.from_list(
        [
            {"prompt": build_prompt(r["prompt"], "chat", tok, instruction=None), "answer": r["answer"]}
            for r in rows
        ]
    )


def make_config(out_dir: str, a: argparse.Namespace, **kw: Any) -> Any:
    from r1cli.grpo.config import RLConfig

    base = dict(
        output_dir=out_dir,
        per_device_train_batch_size=a.prompts * a.generations,
        num_generations=a.generations,
        max_completion_length=a.max_completion_length,
        learning_rate=1e-5,
        loss_type=a.loss_type,
        beta=0.0,
        temperature=1.0,
        max_steps=a.steps,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=1,
        seed=0,
        rewards=["accuracy", "format"],
    )
    base.update(kw)
    return RLConfig(**base)


def build_trainer(cls: type, model: Any, tok: Any, ds: Any, rewards: list, args: Any) -> Any:
    """A trainer stepped by hand (`training_step` + AdamW), with its generation time recorded per step."""
    import torch

    tr = cls(model=model, reward_funcs=rewards, args=args, train_dataset=ds, processing_class=tok)
    tr.current_gradient_accumulation_steps = 1
    tr.bench_opt = torch.optim.AdamW(tr.model.parameters(), lr=args.learning_rate)
    tr.bench_gen = 0.0
    inner = tr._generate_single_turn

    def timed_generate(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            tr.bench_gen += time.perf_counter() - t

    tr._generate_single_turn = timed_generate
    return tr


def one_step(tr: Any, rows: list[dict]) -> dict[str, float]:
    """One optimizer step as the Trainer runs it: generate + score (`_prepare_inputs`), loss, backward, AdamW."""
    tr.bench_gen = 0.0
    w, c = time.perf_counter(), time.process_time()
    tr.training_step(tr.model, rows, None)
    tr.bench_opt.step()
    tr.bench_opt.zero_grad(set_to_none=True)
    return {"wall": time.perf_counter() - w, "cpu": time.process_time() - c, "gen": tr.bench_gen}


def loss_equality(
    model: Any, tok: Any, ds: Any, rewards: list, a: argparse.Namespace, folder: str | None
) -> dict:
    """Both trainers' loss and gradients on one batch scored by TRL (identical completions and log-prob inputs)."""
    import torch
    from trl import GRPOTrainer

    from r1cli.grpo.trainer import R1GRPOTrainer, plan_buckets

    beta = 0.04 if folder else 0.0  # TRL loads its reference from the model's folder
    args_t = make_config("/tmp/r1cli-bench-grpo/eq-trl", a, beta=beta)
    args_r = make_config("/tmp/r1cli-bench-grpo/eq-r1", a, beta=beta)
    m_t, m_r = copy.deepcopy(model), copy.deepcopy(model)
    if folder:
        m_t.config._name_or_path = folder
    trl_tr = GRPOTrainer(model=m_t, reward_funcs=rewards, args=args_t, train_dataset=ds, processing_class=tok)
    r1_tr = R1GRPOTrainer(
        model=m_r, reward_funcs=rewards, args=args_r, train_dataset=ds, processing_class=tok
    )
    # move the policies away from the reference (same noise in both), so the KL term and its gradient are not 0
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in trl_tr.model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    r1_tr.model.load_state_dict(trl_tr.model.state_dict())
    rows = [dict(ds[i]) for i in range(a.prompts) for _ in range(a.generations)]
    trl_tr.model.train()
    r1_tr.model.train()
    torch.manual_seed(1)
    batch = trl_tr._generate_and_score_completions(rows)
    # identical inputs that exercise every term: advantages of both signs, π_old off π_θ so clipping is active
    B = batch["completion_ids"].size(0)
    batch["advantages"] = torch.randn(B, generator=g)
    with torch.no_grad():
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        cur, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trl_tr, trl_tr.model, ids, mask, batch["completion_ids"].size(1)
        )
    batch["old_per_token_logps"] = cur + 0.3 * torch.randn(cur.shape, generator=g)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    shared = r1_tr._prefix_sharing_applies(r1_tr.model, ids, batch["completion_ids"].size(1))
    key = (
        batch["completion_mask"].sum(1)
        if shared
        else batch["prompt_mask"].sum(1) + batch["completion_mask"].sum(1)
    )
    out = {
        "beta": beta,
        "completion_tokens": int(batch["completion_mask"].sum()),
        "r1_scoring": ("one forward per distinct prompt + " if shared else "")
        + f"{len(plan_buckets(key.tolist()))} length bucket(s)",
        "per_loss_type": {},
    }
    worst = 0.0
    for lt in ("grpo", "bnpo", "dr_grpo", "dapo"):
        res = []
        for tr in (trl_tr, r1_tr):
            tr.loss_type = lt
            tr.current_gradient_accumulation_steps = 1
            tr.model.zero_grad(set_to_none=True)
            loss = tr._compute_loss(tr.model, batch)
            loss.backward()
            grads = torch.cat([p.grad.flatten() for p in tr.model.parameters() if p.grad is not None])
            res.append((loss.item(), grads))
        (lt_t, g_t), (lt_r, g_r) = res
        rel_loss = abs(lt_r - lt_t) / max(abs(lt_t), 1e-12)
        rel_grad = ((g_r - g_t).norm() / g_t.norm().clamp(min=1e-12)).item()
        out["per_loss_type"][lt] = {
            "loss_trl": lt_t,
            "loss_r1": lt_r,
            "rel_loss_diff": rel_loss,
            "rel_grad_diff": rel_grad,
            "clip_region_share": r1_tr._metrics["train"]["clip_ratio/region_mean"][-1],
        }
        worst = max(worst, rel_loss, rel_grad)
    out["max_rel_diff"] = worst
    out["equal"] = worst < 1e-4
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="auto", choices=["auto", "tiny", "tiny-test", "random"])
    p.add_argument("--steps", type=int, default=12, help="timed optimizer steps per trainer")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--generations", type=int, default=8, help="G, completions per prompt")
    p.add_argument("--max-completion-length", type=int, default=128)
    p.add_argument("--loss-type", default="dapo")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared 2-core machine 2 threads spin on each other)",
    )
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    import torch
    from trl import GRPOTrainer

    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.rewards import build_rewards

    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    model, tok, desc, folder = load_model(a.model, a.seed)
    ds = dataset(tok, 2000)
    rewards, _weights = build_rewards(["accuracy", "format"])
    trainers = {
        name: build_trainer(
            cls, copy.deepcopy(model), tok, ds, rewards, make_config(f"/tmp/r1cli-bench-grpo/{name}", a)
        )
        for name, cls in (("trl", GRPOTrainer), ("r1", R1GRPOTrainer))
    }
    # steps alternate between the trainers (which one goes first alternates too), on the same prompts, so that
    # load from other processes falls on both alike; the statistic is the median of the per-pair ratios
    steps: dict[str, list[dict]] = {"trl": [], "r1": []}
    lengths: dict[str, list[float]] = {"trl": [], "r1": []}
    with contextlib.redirect_stdout(sys.stderr):
        for i in range(a.warmup + a.steps):
            rows = [
                dict(ds[(i * a.prompts + j) % len(ds)])
                for j in range(a.prompts)
                for _ in range(a.generations)
            ]
            order = ("trl", "r1") if i % 2 == 0 else ("r1", "trl")
            for name in order:
                torch.manual_seed(1000 + i)
                res = one_step(trainers[name], rows)
                if i >= a.warmup:
                    steps[name].append(res)
                    lengths[name].append(trainers[name]._metrics["train"]["completions/mean_length"][-1])
            print(
                f"step {i}: " + "  ".join(f"{n} {steps[n][-1]['wall']:.3f}s" for n in order if steps[n]),
                file=sys.stderr,
            )

    def col(name: str, key: str) -> list[float]:
        return [s[key] for s in steps[name]]

    pair_ratio = [r["wall"] / t["wall"] for r, t in zip(steps["r1"], steps["trl"], strict=True)]
    pair_ratio_cpu = [r["cpu"] / t["cpu"] for r, t in zip(steps["r1"], steps["trl"], strict=True)]
    med = {n: statistics.median(col(n, "wall")) for n in steps}
    gen_share = {n: sum(col(n, "gen")) / sum(col(n, "wall")) for n in steps}
    with contextlib.redirect_stdout(sys.stderr):
        eq = loss_equality(model, tok, ds, rewards, a, folder)
    result = {
        "bench": "grpo_step",
        "model": desc,
        "params": sum(p.numel() for p in model.parameters()),
        "prompts_per_step": a.prompts,
        "num_generations": a.generations,
        "max_completion_length": a.max_completion_length,
        "loss_type": a.loss_type,
        "steps_timed_per_trainer": len(steps["r1"]),
        "median_step_s": {n: round(v, 4) for n, v in med.items()},
        "min_step_s": {n: round(min(col(n, "wall")), 4) for n in steps},
        "ratio": round(statistics.median(pair_ratio), 3),
        "ratio_of_medians": round(med["r1"] / med["trl"], 3),
        "ratio_of_mins": round(min(col("r1", "wall")) / min(col("trl", "wall")), 3),
        "ratio_cpu_time": round(statistics.median(pair_ratio_cpu), 3),
        "goal": 0.7,
        "meets_goal": statistics.median(pair_ratio) <= 0.7,
        "generation_share": {n: round(v, 3) for n, v in gen_share.items()},
        "mean_completion_length": {n: round(statistics.fmean(v), 1) for n, v in lengths.items()},
        "loss_equal": {
            "equal": eq["equal"],
            "max_rel_diff": float(f"{eq['max_rel_diff']:.3g}"),
            "beta": eq["beta"],
            "completion_tokens": eq["completion_tokens"],
            "r1_scoring": eq["r1_scoring"],
            "per_loss_type": {
                k: {kk: float(f"{vv:.6g}") for kk, vv in v.items()} for k, v in eq["per_loss_type"].items()
            },
        },
        "threads": a.threads,
        "load_avg_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
