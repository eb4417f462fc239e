"""Generation throughput: r1cli's engine vs a plain `model.generate` loop, k samples per prompt, same run.

For each model (the tiny base, SmolLM2-135M-Instruct), the same prompts (held-out `arith` problems in the model's
chat template) are sampled k times each at the protocol's temperature 0.6 / top-p 0.95:
- `plain`: one `model.generate(num_return_sequences=k, do_sample=True)` call per prompt, as a simple eval loop
  would do;
- `engine`: one `r1cli.generation.generate(..., n=k)` call for all prompts.
Tokens count what the model generated up to and including EOS. Prints ONE JSON line with completions/s, tokens/s
and the engine/plain ratios per model. Usage:

    .venv/bin/python bench/generation.py [--models tiny,smollm2] [--k 8] [--prompts 32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def load(name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == "tiny":
        from r1cli.tinybase import ensure_base

        path = ensure_base("tiny", seed=0)
    elif name == "tiny-test":
        from r1cli.tinybase import ensure_base

        path = ensure_base("tiny-test", seed=0)
    elif name == "smollm2":
        from r1cli.smollm2 import ensure_smollm2

        path = ensure_smollm2()
    else:
        path = name
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    return model, tok, str(path)


def prompts_for(tok, n: int) -> list[str]:
    from r1cli.prompts import build_prompt
    from r1cli.tasks import get_task

    rows = get_task("arith").generate("test", n, seed=0)
    return [build_prompt(r["prompt"], "chat", tok, instruction=None) for r in rows]


def plain_loop(model, tok, prompts, k, max_new, temperature, top_p, seed):
    import torch

    from r1cli.generation import eos_token_ids

    eos = set(eos_token_ids(model, tok))
    torch.manual_seed(seed)
    tokens = comps = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            enc = tok(p, return_tensors="pt", add_special_tokens=False)
            out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                                 num_return_sequences=k, max_new_tokens=max_new, pad_token_id=tok.pad_token_id)
            for row in out[:, enc.input_ids.shape[1]:].tolist():
                n = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
                tokens += n
                comps += 1
    return comps, tokens, time.perf_counter() - t0


def engine(model, tok, prompts, k, max_new, temperature, top_p, seed):
    from r1cli.generation import generate

    t0 = time.perf_counter()
    out = generate(model, tok, prompts, n=k, temperature=temperature, top_p=top_p, max_new_tokens=max_new,
                   seed=seed, progress=False)
    dt = time.perf_counter() - t0
    return sum(len(r) for r in out), sum(s.n_tokens for r in out for s in r), dt


def bench_model(name: str, k: int, n_prompts: int, max_new: int, seed: int) -> dict:
    model, tok, path = load(name)
    prompts = prompts_for(tok, n_prompts)
    kw = dict(k=k, max_new=max_new, temperature=0.6, top_p=0.95, seed=seed)
    # warm up both paths (first-call allocations, lazy imports)
    plain_loop(model, tok, prompts[:1], **{**kw, "max_new": 4})
    engine(model, tok, prompts[:2], **{**kw, "max_new": 4})
    res = {"model": name, "path": path, "params": sum(p.numel() for p in model.parameters()),
           "prompts": len(prompts), "k": k, "max_new_tokens": max_new}
    for label, fn in (("plain", plain_loop), ("engine", engine)):
        c, t, dt = fn(model, tok, prompts, **kw)
        res[label] = {"completions": c, "tokens": t, "seconds": round(dt, 3),
                      "completions_per_s": round(c / dt, 2), "tokens_per_s": round(t / dt, 1),
                      "mean_tokens": round(t / c, 1)}
    res["speedup_completions"] = round(res["engine"]["completions_per_s"] / res["plain"]["completions_per_s"], 2)
    res["speedup_tokens"] = round(res["engine"]["tokens_per_s"] / res["plain"]["tokens_per_s"], 2)
    print(f"{name}: engine {res['engine']['tokens_per_s']} tok/s vs plain {res['plain']['tokens_per_s']} tok/s "
          f"({res['speedup_tokens']}x)", file=sys.stderr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, tiny-test, smollm2 or a path")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--prompts", default="tiny=32,tiny-test=32,smollm2=4",
                    help="prompts per model (name=N, comma-separated) or one number for all")
    ap.add_argument("--max-new-tokens", default="tiny=160,tiny-test=160,smollm2=64")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("R1CLI_QUIET", "1")

    def per(spec: str, name: str, default: int) -> int:
        if "=" not in spec:
            return int(spec)
        d = dict(item.split("=") for item in spec.split(","))
        return int(d.get(name, default))

    out = {"bench": "generation", "threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0],
           "results": []}
    for name in a.models.split(","):
        out["results"].append(bench_model(name, a.k, per(a.prompts, name, 16), per(a.max_new_tokens, name, 128),
                                          a.seed))
    out["load_avg_1m_end"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
