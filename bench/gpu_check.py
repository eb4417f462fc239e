"""GPU check: QLoRA GRPO steps through r1cli's own loader, trainer, sampler and rewards on a randomly initialised
Qwen2.5-1.5B-architecture model. Prints ONE JSON line on stdout: peak GPU memory and step time.

    python bench/gpu_check.py [--steps 4] [--num-generations 8] [--max-new-tokens 512] [--prompts-per-step 1]
    python bench/gpu_check.py --smoke      # tiny config on CPU in seconds (tests/bench/test_gpu_check.py runs it)

Nothing is downloaded (the GPU machine has no hub access):
- the model config is Qwen2.5-1.5B's published `config.json` values, written out below (`QWEN25_1_5B`); the weights
  are random (seeded) and saved as safetensors, then loaded by `r1cli.models.load_model` in 4-bit NF4 with LoRA
  adapters (QLoRA), exactly as `r1 rl --set load_in_4bit=true --set use_peft=true` loads a real checkpoint;
- the tokenizer is r1cli's own byte-level BPE (`r1cli.tinybase.train_tokenizer`, trained here on the built-in
  arith task, a few hundred tokens). The model keeps Qwen's 151,936-row embedding and LM head, so memory and
  compute are the real architecture's; sampled ids beyond the tokenizer's vocabulary decode to nothing, which
  only the (length-based) reward sees;
- EOS is switched off on the trainer (`eos_token_ids = [-1]`): every completion is exactly `--max-new-tokens`
  long, which the JSON's `completion_length_mean` shows.

One step = one optimizer step of `R1GRPOTrainer`: generate G completions for each prompt with r1cli's sampler,
score them, the GRPO loss, backward through the LoRA adapters (gradient checkpointing on, as in
recipes/qwen2.5-1.5b), AdamW. The first step is a warm-up (CUDA kernels, allocator); `step_s_median` is over the
others. `peak_*_gib` are
`torch.cuda.max_memory_allocated/reserved` over the whole training (model load excluded, reported apart).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Qwen2.5-1.5B (base) config.json, as published by Qwen (values typed from the model card's config).
QWEN25_1_5B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "max_window_layers": 28,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "use_sliding_window": False,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
    "initializer_range": 0.02,
    "attention_dropout": 0.0,
    "use_cache": True,
}

# --smoke: the same architecture family at toy size (CPU, float32, still 4-bit QLoRA through bitsandbytes).
SMOKE: dict[str, Any] = {
    **QWEN25_1_5B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "max_window_layers": 2,
    "sliding_window": 2048,
    "vocab_size": 2048,
}


def build_tokenizer(vocab_size: int = 1024, rows: int = 2000, seed: int = 0) -> Any:
    """r1cli's Qwen2-style BPE tokenizer trained on built-in arith problems and their worked solutions."""
    from r1cli.tasks import get_task
    from r1cli.tinybase import train_tokenizer

    task = get_task("arith")
    texts: list[str] = []
    for row in task.generate("train", rows, seed=seed, unique=False):
        texts.append(f"user\n{row['prompt']}\nassistant\n")
        texts.extend(task.solution(row, style=s) for s in task.styles)
    return train_tokenizer(texts, vocab_size)


def write_random_model(config: dict[str, Any], tok: Any, out: Path, device: str, seed: int) -> int:
    """Save a randomly initialised Qwen2 model of `config` (bf16 on GPU, fp32 on CPU) with `tok` to `out`;
    returns its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(
        **{k: v for k, v in config.items() if k != "model_type"},
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    n = sum(p.numel() for p in model.parameters())
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return n


def step_timer():
    """A TrainerCallback recording the wall time of each optimizer step (CUDA synchronised at both ends)."""
    import torch
    from transformers import TrainerCallback

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            sync()
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def run(a: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset

    from r1cli.config_loader import build
    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.models import count_parameters, load_model
    from r1cli.prompts import render_prompt
    from r1cli.rewards import build_rewards
    from r1cli.stages.rl_config import RLConfig
    from r1cli.tasks import get_task

    t_start = time.perf_counter()
    cuda = torch.cuda.is_available() and not a.smoke
    if not cuda and not a.smoke:
        raise SystemExit("gpu_check: no CUDA device (use --smoke for the CPU check)")
    device = "cuda" if cuda else "cpu"
    work = Path(a.workdir or tempfile.mkdtemp(prefix="r1cli-gpu-check-"))
    tok = build_tokenizer()
    params = write_random_model(SMOKE if a.smoke else QWEN25_1_5B, tok, work / "model", device, a.seed)
    t_model = time.perf_counter()

    G, N = a.num_generations, a.max_new_tokens
    cfg = build(
        RLConfig,
        {
            "model": str(work / "model"),
            "output": str(work / "run"),
            "load_in_4bit": True,
            "use_peft": True,
            "lora_r": 32,
            "lora_alpha": 64,
            "lora_target_modules": ["all-linear"],
            "num_generations": G,
            "per_device_train_batch_size": G * a.prompts_per_step,
            "max_completion_length": N,
            "max_steps": a.steps,
            "learning_rate": 1e-5,
            "temperature": 1.0,
            "beta": a.beta,
            "gradient_checkpointing": True,  # as the GPU recipes (the smoke run covers the same path)
            "save_strategy": "no",
            "logging_steps": 1,
            "disable_tqdm": True,
            "seed": a.seed,
            # a length reward in characters: it differs between completions, so advantages are not all zero
            "rewards": [{"name": "soft_overlong", "params": {"max_length": N, "buffer": N, "unit": "chars"}}],
        },
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model, tokenizer = load_model(cfg, for_training=True, device=device)
    load_alloc = torch.cuda.max_memory_allocated() if cuda else 0
    task = get_task("arith")
    rows = task.generate("train", a.prompts_per_step * a.steps * 4, seed=a.seed)
    data = Dataset.from_list(
        [{**r, "prompt": render_prompt(r["prompt"], builtin_task=True, tokenizer=tokenizer, template="auto")} for r in rows]
    )
    funcs, weights = build_rewards(cfg.rewards)
    cfg.reward_weights = weights
    timer = step_timer()
    trainer = R1GRPOTrainer(
        model=model, reward_funcs=funcs, args=cfg, train_dataset=data, processing_class=tokenizer, callbacks=[timer]
    )
    trainer.eos_token_ids = [-1]  # a random model: force every completion to max_new_tokens
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t_train = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs on stdout
        trainer.train()
    train_s = time.perf_counter() - t_train
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    times = timer.times
    timed = times[1:] if len(times) > 1 else times
    gib = 2**30
    out: dict[str, Any] = {
        "bench": "gpu_check",
        "mode": "smoke" if a.smoke else "gpu",
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": "Qwen2.5-1.5B architecture, random init" if not a.smoke else "tiny Qwen2 (smoke)",
        "params": params,
        "trainable_params": count_parameters(trainer.model, trainable_only=True),
        "quant": "nf4 4-bit + LoRA r32 (QLoRA)",
        "num_generations": G,
        "prompts_per_step": a.prompts_per_step,
        "max_new_tokens": N,
        "beta": a.beta,
        "steps": len(times),
        "completion_length_mean": round(statistics.mean(h["completions/mean_length"] for h in logs), 1) if logs else None,
        "step_s": [round(t, 3) for t in times],
        "step_s_median": round(statistics.median(timed), 3) if timed else None,
        "completion_tokens_per_s": round(G * a.prompts_per_step * N / statistics.median(timed), 1) if timed else None,
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 2) if cuda else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 2) if cuda else None,
        "model_load_allocated_gib": round(load_alloc / gib, 2) if cuda else None,
        "gpu_total_gib": round(torch.cuda.get_device_properties(0).total_memory / gib, 1) if cuda else None,
        "train_s": round(train_s, 1),
        "setup_s": round(t_model - t_start, 1),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "versions": _versions(),
    }
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model on CPU (seconds): checks the script runs")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default 4; smoke 2)")
    ap.add_argument("--num-generations", type=int, default=None, help="G (default 8; smoke 4)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="completion length (default 512; smoke 16)")
    ap.add_argument("--prompts-per-step", type=int, default=1, help="prompts per step (each sampled G times)")
    ap.add_argument("--beta", type=float, default=0.0, help="KL weight (> 0 adds a reference forward)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where the random model is written (default: a temp folder)")
    a = ap.parse_args(argv)
    a.steps = a.steps or (2 if a.smoke else 4)
    a.num_generations = a.num_generations or (4 if a.smoke else 8)
    a.max_new_tokens = a.max_new_tokens or (16 if a.smoke else 512)
    result = run(a)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("R1CLI_QUIET", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a check that must never reach the hub
    main()
