"""The README's performance table, as markdown on stdout, from the JSON files `make bench` wrote in bench/results/.

    .venv/bin/python bench/table.py [bench/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _when(d: dict) -> str:
    m = d["machine"]
    return f"{m['timestamp'][:16].replace('T', ' ')} UTC, {m['cores']} cores, load {m['load_avg'][0]}"


def rows(folder: Path) -> list[str]:
    out = ["| bench | model | r1cli | peer (same run) | ratio | run |", "|---|---|---|---|---|---|"]
    for name in ("generation", "generation_bf16"):
        gen = _load(folder, name)
        for r in (gen or {}).get("results", []):
            what = (f"generation, {r['prompts']} prompts x {r['k']}, {r['max_new_tokens']} new tokens, "
                    f"T {r['temperature']} / top-p {r['top_p']}, {r['dtype']}")
            peer = r["batched_generate"]
            out.append(f"| {what} | {r['model']} | engine {r['engine']['tokens_per_s']:,} tok/s | one batched "
                       f"`generate` {peer['tokens_per_s']:,} tok/s | **{r['speedup_vs_batched_generate']}x** (per CPU second: "
                       f"{r.get('cpu_speedup_vs_batched_generate', '-')}x) | "
                       f"{_when(gen)} |")
            if "per_prompt_generate" in r:
                out.append(f"| (second row) | {r['model']} | engine | one `generate` per prompt "
                           f"{r['per_prompt_generate']['tokens_per_s']:,} tok/s | "
                           f"{r['speedup_vs_per_prompt_generate']}x | |")
    rw = _load(folder, "rewards")
    if rw:
        t = rw["throughput"]
        out.append(f"| grading, {t['items']:,} completions ({t['golds']} MATH-500 golds x {t['per_gold']}) | - | "
                   f"1 worker {t['engine_1worker_items_per_s']:,} items/s ({t['workers_parallel']} workers: "
                   f"{t['engine_parallel_items_per_s']:,}) | math-verify, each gold parsed once "
                   f"{t['peer_items_per_s']:,} items/s | **{t['speedup']}x** ({t['workers_parallel']} workers: "
                   f"{t['speedup_parallel']}x) | {_when(rw)} |")
    for name, model in (("grpo_step", "tiny"), ("grpo_step_smollm2", "smollm2")):
        gs = _load(folder, name)
        if gs:
            out.append(f"| GRPO step, {gs['prompts_per_step']} prompts x G {gs['num_generations']}, <= "
                       f"{gs['max_completion_length']} tokens, {gs['loss_type']} | {model} | `R1GRPOTrainer` "
                       f"{gs['median_step_s']['r1']} s | `trl.GRPOTrainer` {gs['median_step_s']['trl']} s | "
                       f"**{gs['ratio']}x** the time | {_when(gs)} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results")))
