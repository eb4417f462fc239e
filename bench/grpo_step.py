"""GRPO step time: `r1 rl`'s trainer (R1GRPOTrainer) against plain `trl.GRPOTrainer`, same model/data/config.

    .venv/bin/python bench/grpo_step.py [--model auto|tiny|tiny-test|random|smollm2] [--steps 12] [--warmup 2]

Both trainers are built once and stepped by hand, one optimizer step each in turn (generate + score through
TRL's `_prepare_inputs`, loss, backward, AdamW), on the same prompts, alternating which goes first, so that load
from other processes on a shared machine falls on both alike. Prints ONE JSON line on stdout:
- `ratio`: the median over step pairs of (R1GRPOTrainer step time / plain GRPOTrainer step time), goal <= 0.7;
  also the ratio of the medians, of the minima (the least disturbed steps) and of process CPU time;
- `generation_share`: the share of a step spent generating (the profile that motivated the sampler), and the mean
  completion length each trainer saw (same model, same sampling distribution: they should agree);
- `loss_equal`: both trainers' `_compute_loss` on one identical scored batch (same completions, advantages of both
  signs, π_old off π_θ so clipping is active, sampler log-probs off π_old, reference log-probs with β = 0.04), for
  every loss option family (aggregations, GSPO, GSPO-token against TRL's GSPO, cispo, sapo, luspo, vespo, delta,
  entropy mask, entropy bonus, off-policy mask, rollout correction, bias-corrected KL): per family the largest
  relative difference of the losses and of the gradients (float rounding only: the scoring forward differs).
  `--equality-only` runs just this part.

Model (`--model auto`): the cached `tiny` base if it was built, else the `tiny-test` base (built and cached by
`r1cli.tinybase.ensure_base`), prompted with the built-in arith task in its chat format and scored by the
accuracy + format rewards; `random` is a randomly initialised Qwen2 of the tiny architecture (completions then run
to the length limit, so the sampler's early stop has nothing to save); `smollm2` is SmolLM2-135M-Instruct on
three-digit additions with R1's instruction (goal <= 0.5 there; the loss equality is not rerun on it). Every
trainer's step is also split into generation, log-prob forwards, rewards, backward, optimizer and the rest
(`mean_step_split_s`).
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
    from r1cli.paths import cache_root

    if which == "auto":
        key = tinybase.preset_config("tiny").key(0)
        built = tinybase.is_complete(cache_root() / "tinybase" / f"tiny-s0-{key[:16]}", key)
        which = "tiny" if built else "tiny-test"
    if which in ("tiny", "tiny-test"):
        path = tinybase.ensure_base(which, seed=0)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
        return model, tok, f"{which} base ({path.name})", str(path)
    if which == "smollm2":
        from r1cli.smollm2 import ensure_smollm2

        path = ensure_smollm2()
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
        return model, tok, f"SmolLM2-135M-Instruct ({path.name})", str(path)
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


def dataset(tok: Any, n: int, which: str) -> Any:
    """The tiny models: arith in their chat format, no instruction. SmolLM2: three-digit additions in its chat
    template with R1's \\boxed{} instruction (what `recipes/smollm2-135m/rl.yaml` trains on)."""
    from datasets import Dataset

    from r1cli.prompts import R1_INSTRUCTION, build_prompt
    from r1cli.tasks import get_task

    if which == "smollm2":
        rows, instruction = get_task("addition", min_digits=3, max_digits=3).generate("train", n, seed=0), R1_INSTRUCTION
    else:
        rows, instruction = get_task("arith").generate("train", n, seed=0), None
    return Dataset.from_list(
        [
            {"prompt": build_prompt(r["prompt"], "chat", tok, instruction=instruction), "answer": r["answer"]}
            for r in rows
        ]
    )


def make_config(out_dir: str, a: argparse.Namespace, **kw: Any) -> Any:
    from r1cli.stages.rl_config import RLConfig

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
    # the rest of the step's split: every log-prob forward (old/ref scoring and the loss's own), the reward
    # functions, the backward pass (the optimizer step is timed in `one_step`)
    tr.bench_parts = {"forward": 0.0, "rewards": 0.0, "backward": 0.0}
    for attr, part, owner in (("_get_per_token_logps_and_entropies", "forward", tr),
                              ("_calculate_rewards", "rewards", tr),
                              ("backward", "backward", tr.accelerator)):
        setattr(owner, attr, _timed(getattr(owner, attr), tr.bench_parts, part))
    return tr


def _timed(fn: Any, parts: dict[str, float], part: str) -> Any:
    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            parts[part] += time.perf_counter() - t

    return wrapper


def one_step(tr: Any, rows: list[dict]) -> dict[str, float]:
    """One optimizer step as the Trainer runs it: generate + score (`_prepare_inputs`), loss, backward, AdamW."""
    tr.bench_gen = 0.0
    tr.bench_parts.update(dict.fromkeys(tr.bench_parts, 0.0))
    w, c = time.perf_counter(), time.process_time()
    tr.training_step(tr.model, rows, None)
    o = time.perf_counter()
    tr.bench_opt.step()
    tr.bench_opt.zero_grad(set_to_none=True)
    wall = time.perf_counter() - w
    return {"wall": wall, "cpu": time.process_time() - c, "gen": tr.bench_gen, **tr.bench_parts,
            "optimizer": time.perf_counter() - o}


def option_families(beta: float, opsm_threshold: float) -> dict[str, list[dict]]:
    """Each loss option family: the cases run through both trainers (`trl` = options for TRL's side only)."""
    clipped = ("grpo", "bnpo", "dr_grpo", "dapo")
    fam: dict[str, list[dict]] = {
        "aggregation": [{"loss_type": lt} for lt in clipped],
        "gspo": [{"loss_type": lt, "importance_sampling_level": "sequence"} for lt in (*clipped, "luspo")],
        "gspo_token_vs_trl_gspo": [
            {"loss_type": lt, "importance_sampling_level": "sequence_token", "trl": {"importance_sampling_level": "sequence"}}
            for lt in clipped
        ],
        "cispo": [
            {"loss_type": "cispo", "epsilon_high": 5.0, "importance_sampling_level": lvl} for lvl in ("token", "sequence")
        ],
        "sapo": [{"loss_type": "sapo", "importance_sampling_level": lvl} for lvl in ("token", "sequence")],
        "luspo": [{"loss_type": "luspo", "importance_sampling_level": lvl} for lvl in ("token", "sequence")],
        "vespo": [{"loss_type": "vespo"}],
        "delta": [{"loss_type": lt, "delta": 1.3, "epsilon_high": 0.28} for lt in ("grpo", "dapo", "luspo")],
        "entropy_mask": [{"loss_type": lt, "top_entropy_quantile": 0.2} for lt in ("grpo", "dapo", "sapo")],
        "entropy_bonus": [
            {"loss_type": lt, "entropy_coef": 0.01, "_entropy_bonus_enabled": True} for lt in ("grpo", "dapo", "vespo")
        ],
        "off_policy_mask": [
            {"loss_type": lt, "off_policy_mask_threshold": opsm_threshold} for lt in ("grpo", "dapo", "cispo")
        ],
        "rollout_correction": [
            {
                "loss_type": "vespo" if mode.startswith("token") else "grpo",
                "use_vllm": True,
                "vllm_importance_sampling_correction": True,
                "vllm_importance_sampling_mode": mode,
                "vllm_importance_sampling_clip_min": 0.8,
                "vllm_importance_sampling_clip_max": 1.25,
            }
            for mode in ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
        ],
    }
    if beta:
        fam["bias_corrected_kl"] = [
            {"loss_type": lt, "use_bias_correction_kl": True, "importance_sampling_level": lvl}
            for lt in ("grpo", "dapo")
            for lvl in ("token", "sequence")
        ]
    return fam


def loss_equality(
    model: Any, tok: Any, ds: Any, rewards: list, a: argparse.Namespace, folder: str | None
) -> dict:
    """Both trainers' loss and gradients on one batch scored by TRL (identical completions and log-prob inputs),
    for every loss option family (`option_families`). The rollout weights TRL's side multiplies are computed by
    r1cli's `rollout_correction` from the batch's log-probs (TRL computes them while generating with vLLM only;
    tests/grpo/test_trainer.py checks that function against TRL's own vLLM path)."""
    import torch
    from trl import GRPOTrainer

    from r1cli.grpo.loss import rollout_correction
    from r1cli.grpo.scoring import plan_buckets, prefix_sharing_applies
    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.grpo.trl_private import loss_options

    if folder is None:  # TRL loads its reference from the model's folder
        folder = "/tmp/r1cli-bench-grpo/eq-model"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    beta = 0.04
    args_t = make_config("/tmp/r1cli-bench-grpo/eq-trl", a, beta=beta)
    args_r = make_config("/tmp/r1cli-bench-grpo/eq-r1", a, beta=beta)
    m_t, m_r = copy.deepcopy(model), copy.deepcopy(model)
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
    # identical inputs that exercise every term: advantages of both signs, π_old off π_θ so clipping is active,
    # sampler log-probs off π_old (a sampler that is not the trainer)
    B = batch["completion_ids"].size(0)
    batch["advantages"] = torch.randn(B, generator=g)
    with torch.no_grad():
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        cur, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trl_tr, trl_tr.model, ids, mask, batch["completion_ids"].size(1)
        )
    batch["old_per_token_logps"] = cur + 0.3 * torch.randn(cur.shape, generator=g)
    batch["sampling_per_token_logps"] = batch["old_per_token_logps"] + 0.1 * torch.randn(cur.shape, generator=g)
    cm = batch["completion_mask"].float()
    drift = ((batch["sampling_per_token_logps"] - cur) * cm).sum(1) / cm.sum(1).clamp(min=1)
    neg = drift[batch["advantages"] < 0].sort().values  # a threshold between two drifts: no ties to round
    opsm_threshold = ((neg[len(neg) // 2 - 1] + neg[len(neg) // 2]) / 2).item()
    shared = prefix_sharing_applies(r1_tr.model, ids, batch["completion_ids"].size(1), r1_tr.scoring, r1_tr.accelerator)
    key = (
        batch["completion_mask"].sum(1)
        if shared
        else batch["prompt_mask"].sum(1) + batch["completion_mask"].sum(1)
    )
    out: dict[str, Any] = {
        "beta": beta,
        "completion_tokens": int(batch["completion_mask"].sum()),
        "r1_scoring": ("one forward per distinct prompt + " if shared else "")
        + f"{len(plan_buckets(key.tolist()))} length bucket(s)",
        "per_family": {},
    }
    worst = 0.0
    for family, cases in option_families(beta, opsm_threshold).items():
        rel_losses, rel_grads = [], []
        for case in cases:
            opts = {k: v for k, v in case.items() if k != "trl"}
            inputs = dict(batch)
            if opts.get("use_vllm"):
                inputs["importance_sampling_ratio"] = rollout_correction(
                    batch["old_per_token_logps"],
                    batch["sampling_per_token_logps"],
                    batch["completion_mask"],
                    opts["vllm_importance_sampling_mode"],
                    opts["vllm_importance_sampling_clip_min"],
                    opts["vllm_importance_sampling_clip_max"],
                )
            res = []
            for tr, extra in ((trl_tr, case.get("trl", {})), (r1_tr, {})):
                with loss_options(tr, **{**opts, **extra}):
                    tr.current_gradient_accumulation_steps = 1
                    tr.model.zero_grad(set_to_none=True)
                    loss = tr._compute_loss(tr.model, inputs)
                    loss.backward()
                grads = torch.cat([p.grad.flatten() for p in tr.model.parameters() if p.grad is not None])
                res.append((loss.item(), grads))
            (lt_t, g_t), (lt_r, g_r) = res
            rel_losses.append(abs(lt_r - lt_t) / max(abs(lt_t), 1e-12))
            rel_grads.append(((g_r - g_t).norm() / g_t.norm().clamp(min=1e-12)).item())
        out["per_family"][family] = {
            "cases": len(cases),
            "max_rel_loss_diff": max(rel_losses),
            "max_rel_grad_diff": max(rel_grads),
        }
        worst = max(worst, *rel_losses, *rel_grads)
    out["max_rel_diff"] = worst
    out["equal"] = worst < 1e-4
    return out


def _eq_summary(eq: dict) -> dict:
    return {
        "loss_equal": {
            "equal": eq["equal"],
            "max_rel_diff": float(f"{eq['max_rel_diff']:.3g}"),
            "beta": eq["beta"],
            "completion_tokens": eq["completion_tokens"],
            "r1_scoring": eq["r1_scoring"],
            "per_family": {
                k: {kk: vv if isinstance(vv, int) else float(f"{vv:.3g}") for kk, vv in v.items()}
                for k, v in eq["per_family"].items()
            },
        }
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="auto", choices=["auto", "tiny", "tiny-test", "random", "smollm2"])
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
    p.add_argument(
        "--equality-only", action="store_true", help="only the loss/gradient equality with TRL, no step timing"
    )
    a = p.parse_args()

    import torch
    from trl import GRPOTrainer

    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.rewards import build_rewards

    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    model, tok, desc, folder = load_model(a.model, a.seed)
    ds = dataset(tok, 2000, a.model)
    rewards, _weights = build_rewards(["accuracy", "format"])
    if a.equality_only:
        with contextlib.redirect_stdout(sys.stderr):
            eq = loss_equality(model, tok, ds, rewards, a, folder)
        print(json.dumps({"bench": "grpo_step", "model": desc, **_eq_summary(eq), "wall_s": round(time.perf_counter() - t0, 1)}))
        return
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
    split = {}
    for n in steps:
        parts = {k: statistics.fmean(col(n, k)) for k in ("gen", "forward", "rewards", "backward", "optimizer")}
        parts["other"] = statistics.fmean(col(n, "wall")) - sum(parts.values())
        split[n] = {("generation" if k == "gen" else k): round(v, 3) for k, v in parts.items()}
    if a.model == "smollm2":  # 18 loss families x forward/backward of 135M parameters: checked on the tiny model
        eq_summary: dict[str, Any] = {"loss_equal": "not run on this model (bench/grpo_step.py --equality-only)"}
    else:
        with contextlib.redirect_stdout(sys.stderr):
            eq_summary = _eq_summary(loss_equality(model, tok, ds, rewards, a, folder))
    goal = 0.5 if a.model == "smollm2" else 0.7
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
        "goal": goal,
        "meets_goal": statistics.median(pair_ratio) <= goal,
        "generation_share": {n: round(v, 3) for n, v in gen_share.items()},
        "mean_step_split_s": split,
        "mean_completion_length": {n: round(statistics.fmean(v), 1) for n, v in lengths.items()},
        **eq_summary,
        "threads": a.threads,
        "load_avg_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
