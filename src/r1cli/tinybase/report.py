"""How a tiny base does on held-out problems: `evaluate_accuracy` (sampled or greedy, a style forced or not) and
`style_report` (the measurements that tell whether RL has room on it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from r1cli.tinybase.cache import build_info
from r1cli.tinybase.tokenizer import EOS


def evaluate_accuracy(
    model_dir: str | Path | Any,
    task: Any = "arith",
    n: int = 1000,
    temperature: float = 1.0,
    greedy: bool = False,
    seed: int = 0,
    *,
    k: int = 1,
    prefix: str = "",
    max_new_tokens: int = 200,
    batch_size: int = 512,
    task_params: dict[str, Any] | None = None,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """Sampled (or greedy) accuracy on `n` held-out problems of `task` (`k` samples each), graded by the task.

    `model_dir` is a folder (or a loaded model, then pass `tokenizer`). `prefix` is prepended to every completion
    (e.g. `task.style_prefix("detailed")` forces a style). Returns accuracy, its standard error, format rate,
    mean completion length in tokens, the share of each solution style and, when k > 1, the share of prompts
    whose k rewards are not all equal (groups that carry a GRPO gradient). Sampled by `r1cli.generation.generate`
    (every stage's engine; top-p 1, samples seeded by `seed` and the prompt), `batch_size` rows at a time.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1cli.generation import generate
    from r1cli.prompts import build_prompt, extract_answer_tag, extract_think
    from r1cli.tasks import Task, get_task

    task_obj: Task = task if isinstance(task, Task) else get_task(task, **(task_params or {}))
    if isinstance(model_dir, (str, Path)):
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir)  # SDPA, as `r1 eval` loads it
    else:
        model, tok = model_dir, tokenizer
    rows = task_obj.generate("test", n, seed=seed)
    prompts = [build_prompt(r["prompt"], "chat", tok, instruction=None) + prefix for r in rows]
    correct = [[] for _ in rows]
    formatted, lengths, styles = 0, [], {}
    t0 = time.perf_counter()
    out = generate(model, tok, prompts, n=k, temperature=0.0 if greedy else temperature, top_p=1.0,
                   max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, progress=False,
                   eos_ids=[tok.convert_tokens_to_ids(EOS)])
    for i, samples in enumerate(out):
        for smp in samples:
            lengths.append(smp.n_tokens)
            text = prefix + smp.text
            ans = extract_answer_tag(text)
            ok = extract_think(text) is not None and ans is not None
            formatted += ok
            correct[i].append(bool(ok and task_obj.verify(rows[i], ans)))
            st = task_obj.style_of(text) or "other"
            styles[st] = styles.get(st, 0) + 1
    flat = [c for cs in correct for c in cs]
    acc = sum(flat) / len(flat)
    per_prompt = [sum(cs) / len(cs) for cs in correct]
    se = (sum((x - acc) ** 2 for x in per_prompt) / max(1, len(per_prompt) - 1) / len(per_prompt)) ** 0.5
    res = {
        "task": task_obj.name,
        "n": len(rows),
        "k": k,
        "temperature": 0.0 if greedy else temperature,
        "greedy": greedy,
        "prefix": prefix,
        "accuracy": acc,
        "stderr": se,
        "format_rate": formatted / len(flat),
        "mean_length": sum(lengths) / len(lengths),
        "style_share": {s: c / len(flat) for s, c in sorted(styles.items())},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if k > 1:
        res["groups_with_variance"] = sum(0 < sum(cs) < len(cs) for cs in correct) / len(correct)
    return res


def style_report(model_dir: str | Path, n: int = 1000, seed: int = 0, group_prompts: int = 256) -> dict[str, Any]:
    """The measurements that tell whether RL has room on a tiny base (one dict, see `python -m r1cli.tinybase`):
    natural accuracy at T=1, T=0.6 and greedy; accuracy with each solution style forced at T=1; the share of G=8
    groups (T=1) whose rewards differ; plus the build manifest's size, timings and tokens/s."""
    from r1cli.tasks import get_task

    info = build_info(model_dir) or {}
    pc = info.get("preset_config") or {}
    task = get_task(pc.get("task", "arith"), **dict(pc.get("task_params") or ()))
    keep = ("accuracy", "stderr", "format_rate", "mean_length", "style_share", "seconds")

    def ev(**kw: Any) -> dict[str, Any]:
        r = evaluate_accuracy(model_dir, task, seed=seed, **kw)
        return {k: r[k] for k in keep if k in r} | ({"groups_with_variance": r["groups_with_variance"]} if "k" in kw else {})

    report: dict[str, Any] = {k: info.get(k) for k in ("params", "train_steps", "tokens", "train_seconds",
                                                      "tokens_per_second", "build_seconds", "final_loss")}
    report["T1"] = ev(n=n, temperature=1.0)
    report["T0.6"] = ev(n=n, temperature=0.6)
    report["greedy"] = ev(n=n, greedy=True)
    for style in task.styles if len(task.styles) > 1 else ():
        report[f"forced_{style}_T1"] = ev(n=n, temperature=1.0, prefix=task.style_prefix(style))
    report["G8_T1"] = ev(n=group_prompts, temperature=1.0, k=8)
    return report
