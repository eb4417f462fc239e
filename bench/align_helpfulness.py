"""Mean reward-model scores of two policies on held-out general prompts; prints ONE JSON line on stdout.

Both policies (e.g. `runs/demo/rl` before `r1 align` and its output after) answer the same built-in held-out
general prompts (`r1cli.tasks.preference.general_rows("test", n)`), rendered exactly as `r1 align` renders them,
with the same sampler and seed (k samples each, temperature T). The same reward model then scores each
completion through the registered `helpfulness` (prompt + final summary) and `harmlessness` (prompt + whole
response) rewards with `normalize: none` (raw scores). Reported: mean ± standard error over prompts (each prompt's
mean over its k samples), the after-minus-before difference, the share of summarise prompts whose summary is
empty, and the mean completion length.

Usage: .venv/bin/python bench/align_helpfulness.py --before runs/demo/rl --after RUN --reward-model RM_RUN
       [--n 100] [--k 4] [--temperature 1.0] [--max-new-tokens 160]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys


def _policy_scores(spec: str, rows: list[dict], args, rewards: dict) -> dict:
    from r1cli.config_groups import ModelArgs
    from r1cli.generation import generate
    from r1cli.models import load_model
    from r1cli.prompts import render_prompt
    from r1cli.rewards.reward_model import summary_of

    model, tok = load_model(ModelArgs(model=spec), device="cpu")
    prompts = [render_prompt(r["prompt"], builtin_task=True, tokenizer=tok) for r in rows]
    samples = generate(model, tok, prompts, n=args.k, temperature=args.temperature, top_p=1.0,
                       max_new_tokens=args.max_new_tokens, seed=args.seed, progress=False)
    out: dict = {"model": spec}
    texts = [s.text for ss in samples for s in ss]
    cols = {"question": [r["prompt"] for r in rows for _ in range(args.k)],
            "kind": ["general"] * len(texts)}
    for name, fn in rewards.items():
        vals = fn(texts, **cols)
        per_prompt = [statistics.fmean(vals[i * args.k:(i + 1) * args.k]) for i in range(len(rows))]
        out[name] = {"mean": round(statistics.fmean(per_prompt), 4),
                     "se": round(statistics.stdev(per_prompt) / len(per_prompt) ** 0.5, 4)}
        out[f"_{name}_per_prompt"] = per_prompt
    out["mean_tokens"] = round(statistics.fmean(s.n_tokens for ss in samples for s in ss), 1)
    out["empty_summary_share"] = round(sum(summary_of(t) == "" for t in texts) / len(texts), 3)
    out["example"] = texts[0][:200]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--reward-model", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from r1cli.rewards import get_reward
    from r1cli.tasks.preference import general_rows

    rows = general_rows("test", args.n, seed=0)
    rewards = {name: get_reward(name, model=args.reward_model, normalize="none", device="cpu")
               for name in ("helpfulness", "harmlessness")}
    before = _policy_scores(args.before, rows, args, rewards)
    after = _policy_scores(args.after, rows, args, rewards)
    result = {"bench": "align_helpfulness", "n_prompts": len(rows), "k": args.k, "temperature": args.temperature,
              "reward_model": args.reward_model}
    for name in rewards:
        diffs = [a - b for a, b in zip(after.pop(f"_{name}_per_prompt"), before.pop(f"_{name}_per_prompt"),
                                       strict=True)]
        result[f"{name}_diff"] = {"mean": round(statistics.fmean(diffs), 4),
                                  "se": round(statistics.stdev(diffs) / len(diffs) ** 0.5, 4)}
    result["before"], result["after"] = before, after
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
