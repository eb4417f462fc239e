"""Generation throughput: r1cli's engine vs ONE batched `model.generate` call over the same rows, same run.

For each model (`tiny`: the embedded tiny base; `smollm2`: SmolLM2-135M-Instruct, `r1 base --preset
smollm2-135m`; or a model folder), the same prompts (held-out `arith` problems in the model's chat template) are
each sampled k times at the protocol's temperature 0.6 / top-p 0.95, up to `--max-new-tokens`:
- `batched_generate` (the headline peer): one left-padded `model.generate(num_return_sequences=k,
  do_sample=True, top_k=0)` call over all prompts: prompts x k rows, the engine's rows;
- `per_prompt_generate` (`--loop`, a second row): one `model.generate` call per prompt, as a naive eval loop does;
- `engine`: one `r1cli.generation.generate(..., n=k)` call for all prompts.
Both stop a row at the same EOS ids; `--dtype bfloat16` loads the weights in bfloat16 for both. Tokens count what
the model generated up to and including EOS (a batched `generate` keeps decoding finished rows as padding; those
steps are not counted). The two draw different samples (different random streams), so the ratio is of new tokens
per second. Each path runs `--repeat` times, alternating which goes first, and the fastest run of each is kept (the
least disturbed by other load on a shared machine); all run times (wall and process CPU seconds) and the load
average are in the JSON, and `cpu_speedup_*` compares tokens per process-CPU second (the work done, less
sensitive to other processes than the wall clock). Prints ONE JSON line on stdout (`--out FILE` writes it there too).

    .venv/bin/python bench/generation.py [--model tiny,smollm2] [--prompts 32] [--k 4] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402

TEMPERATURE, TOP_P = 0.6, 0.95


def load(name: str, dtype: str = "float32"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name in ("tiny", "tiny-test"):
        from r1cli.tinybase import ensure_base

        path = ensure_base(name, seed=0)
    elif name == "smollm2":
        from r1cli.smollm2 import ensure_smollm2

        path = ensure_smollm2()
    else:
        path = name
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    return model, tok, str(path)


def prompts_for(tok, n: int) -> list[str]:
    from r1cli.prompts import build_prompt
    from r1cli.tasks import get_task

    rows = get_task("arith").generate("test", n, seed=0)
    return [build_prompt(r["prompt"], "chat", tok, instruction=None) for r in rows]


def _count(rows: list[list[int]], eos: set[int]) -> tuple[int, int]:
    """(completions, tokens up to and including the first EOS) of generated rows."""
    tokens = sum(next((i + 1 for i, t in enumerate(r) if t in eos), len(r)) for r in rows)
    return len(rows), tokens


def hf_generate(model, tok, prompts, k, max_new, seed=None) -> tuple[int, int]:
    """One left-padded `generate` call over `prompts`, k samples each (torch's RNG seeded first unless None)."""
    import torch

    from r1cli.generation import eos_token_ids

    eos = eos_token_ids(model, tok)
    if seed is not None:
        torch.manual_seed(seed)
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, top_k=0,
                             num_return_sequences=k, max_new_tokens=max_new, eos_token_id=eos,
                             pad_token_id=tok.pad_token_id)
    return _count(out[:, enc.input_ids.shape[1]:].tolist(), set(eos))


def batched_generate(model, tok, prompts, k, max_new, seed) -> tuple[int, int]:
    return hf_generate(model, tok, prompts, k, max_new, seed)


def per_prompt_generate(model, tok, prompts, k, max_new, seed) -> tuple[int, int]:
    import torch

    torch.manual_seed(seed)  # once: a seed per call would give every prompt the same random stream
    comps = tokens = 0
    for p in prompts:
        c, t = hf_generate(model, tok, [p], k, max_new)
        comps, tokens = comps + c, tokens + t
    return comps, tokens


def engine(model, tok, prompts, k, max_new, seed) -> tuple[int, int]:
    from r1cli.generation import generate

    out = generate(model, tok, prompts, n=k, temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=max_new,
                   seed=seed, progress=False)
    return sum(len(r) for r in out), sum(s.n_tokens for r in out for s in r)


def bench_model(name: str, k: int, n_prompts: int, max_new: int, seed: int, repeat: int, loop: bool,
                dtype: str) -> dict:
    model, tok, path = load(name, dtype)
    prompts = prompts_for(tok, n_prompts)
    paths = {"batched_generate": batched_generate, "engine": engine}
    if loop:
        paths["per_prompt_generate"] = per_prompt_generate
    for fn in paths.values():  # warm-up: first-call allocations, lazy imports
        fn(model, tok, prompts[:2], k, 4, seed)
    runs: dict[str, list[dict]] = {label: [] for label in paths}
    labels = list(paths)
    for r in range(repeat):
        for label in labels if r % 2 == 0 else labels[::-1]:
            load0 = os.getloadavg()[0]
            cpu0, t0 = time.process_time(), time.perf_counter()
            c, t = paths[label](model, tok, prompts, k, max_new, seed)
            dt = time.perf_counter() - t0
            runs[label].append({"completions": c, "tokens": t, "seconds": round(dt, 3),
                                "tokens_per_s": round(t / dt, 1), "cpu_s": round(time.process_time() - cpu0, 3),
                                "load_avg_1m": round(load0, 2)})
    res = {"model": name, "path": path, "params": sum(p.numel() for p in model.parameters()),
           "dtype": str(next(model.parameters()).dtype).removeprefix("torch."), "prompts": len(prompts), "k": k,
           "rows": len(prompts) * k, "max_new_tokens": max_new, "temperature": TEMPERATURE, "top_p": TOP_P}
    for label, rs in runs.items():
        best = max(rs, key=lambda x: x["tokens_per_s"])
        res[label] = {**best, "mean_tokens": round(best["tokens"] / best["completions"], 1), "runs": rs}
    peer = res["batched_generate"]["tokens_per_s"]
    res["speedup_vs_batched_generate"] = round(res["engine"]["tokens_per_s"] / peer, 2)
    # tokens per process-CPU second: the work each path does, less sensitive to other load than the wall clock
    per_cpu = {label: max(x["tokens"] / x["cpu_s"] for x in rs) for label, rs in runs.items()}
    res["cpu_speedup_vs_batched_generate"] = round(per_cpu["engine"] / per_cpu["batched_generate"], 2)
    if loop:
        res["speedup_vs_per_prompt_generate"] = round(
            res["engine"]["tokens_per_s"] / res["per_prompt_generate"]["tokens_per_s"], 2)
    print(f"{name}: engine {res['engine']['tokens_per_s']} tok/s vs one batched generate {peer} tok/s "
          f"({res['speedup_vs_batched_generate']}x)", file=sys.stderr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny,smollm2", help="comma-separated: tiny, smollm2, tiny-test or a folder")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeat", default="tiny=3,1",
                    help="runs of each path, the fastest kept: N, or name=N,...,N (the last: every other model)")
    ap.add_argument("--loop", action="store_true", help="also time one generate call per prompt (a second row)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights (both paths)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("R1CLI_QUIET", "1")
    out = {"bench": "generation", "command": " ".join(["python", *sys.argv]), "machine": meta.machine(),
           "results": []}
    spec = [x.split("=") for x in a.repeat.split(",")]
    repeat = {x[0]: int(x[1]) for x in spec if len(x) == 2}
    other = next((int(x[0]) for x in spec if len(x) == 1), 1)
    for name in a.model.split(","):
        out["results"].append(bench_model(name, a.k, a.prompts, a.max_new_tokens, a.seed,
                                          repeat.get(name, other), a.loop, a.dtype))
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    line = json.dumps(out)
    print(line)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
