"""Pretraining the tiny base: the two-style corpus (its mix annealed over the steps), batches that keep the mix
in every optimizer step, the Qwen2 model config and the training loop."""

from __future__ import annotations

import math
import random
import time
from typing import Any

from r1cli.tinybase.config import TinyBaseConfig
from r1cli.tinybase.tokenizer import EOS, PAD


def detailed_share_at(step: int, cfg: TinyBaseConfig) -> float:
    """The detailed-style share of step `step`'s rows: `detailed_share_start` annealed linearly to
    `detailed_share` over the first 75% of steps, then held."""
    frac = min(1.0, step / max(1.0, 0.75 * cfg.train_steps))
    return cfg.detailed_share_start + (cfg.detailed_share - cfg.detailed_share_start) * frac


def corpus_rows(cfg: TinyBaseConfig, n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (question, completion) pairs from the task's train split, in training order (row i is used at step
    i // batch_size); each completion is in the detailed style with probability `detailed_share_at(step)`
    (tasks with one style always use it). With `mixed_share` > 0, a detailed row is written in the `mixed` style
    with that probability (a separate RNG: the detailed/terse choices do not change); when the task has the
    `<style>_mixed` versions (arith's `mixed_marker`), every row, of either style, is written in its style's mixed
    version with that probability instead."""
    from r1cli.errors import ConfigError
    from r1cli.tasks import get_task
    from r1cli.tasks.base import PRETRAIN

    task = get_task(cfg.task, **dict(cfg.task_params))
    rng = random.Random(f"r1cli:tinybase:styles:{seed}")
    mix_rng = random.Random(f"r1cli:tinybase:mixed:{seed}")
    marked = "detailed_mixed" in task.styles and "terse_mixed" in task.styles
    if cfg.mixed_share > 0 and "mixed" not in task.styles and not marked:
        raise ConfigError(f"mixed_share > 0 needs a task with a 'mixed' style; {cfg.task!r} has {task.styles}",
                          hint="use task arith with task_params mixed_style or mixed_marker: true, or mixed_share 0")
    two = "terse" in task.styles and "detailed" in task.styles
    out = []
    for i, row in enumerate(task.generate(PRETRAIN, n, seed=seed, unique=False)):
        if two:
            style = "detailed" if rng.random() < detailed_share_at(i // cfg.batch_size, cfg) else "terse"
            if marked and cfg.mixed_share > 0:
                if mix_rng.random() < cfg.mixed_share:
                    style = f"{style}_mixed"
            elif style == "detailed" and cfg.mixed_share > 0 and mix_rng.random() < cfg.mixed_share:
                style = "mixed"
        else:
            style = task.styles[0]
        out.append((row["prompt"], task.solution(row, style=style)))
    return out


def encode_pairs(tok: Any, pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """Token ids of prompt + completion + EOS for each pair, and where the completion starts.

    The prompt and the completion are tokenized separately, as at generation time (no merge across the boundary).
    """
    from r1cli.prompts import build_prompt

    eos = tok.convert_tokens_to_ids(EOS)
    prompts = [build_prompt(q, "chat", tok, instruction=None) for q, _ in pairs]
    p_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    c_ids = tok([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    return [(p + c + [eos], len(p)) for p, c in zip(p_ids, c_ids, strict=False)]


def batches(encoded: list[tuple[list[int], int]], batch_size: int, micro_batches: int) -> list[list[list[tuple[list[int], int]]]]:
    """Steps in corpus order; each step's rows sorted by length and cut into `micro_batches` micro-batches
    (accumulated into one update), so padding stays small and no step is all one style."""
    out = []
    for i in range(0, len(encoded) - batch_size + 1, batch_size):
        rows = sorted(encoded[i : i + batch_size], key=lambda e: len(e[0]))
        size = math.ceil(batch_size / micro_batches)
        out.append([rows[j : j + size] for j in range(0, batch_size, size)])
    return out


def collate(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded `input_ids`, `attention_mask` and `labels` ([B, T]); labels are -100 outside completions."""
    import torch

    T = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.long)
    labels = torch.full((len(batch), T), -100, dtype=torch.long)
    for i, (seq, start) in enumerate(batch):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, start : len(seq)] = torch.tensor(seq[start:])
    return ids, mask, labels


def model_config(cfg: TinyBaseConfig, tok: Any) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids(EOS),
        pad_token_id=tok.convert_tokens_to_ids(PAD),
        use_cache=True,
    )


def lr_at(step: int, cfg: TinyBaseConfig) -> float:
    """Linear warmup, then cosine decay to `min_lr_ratio * lr` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.train_steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def pretrain(cfg: TinyBaseConfig, tok: Any, seed: int, log_every: int = 50,
             callback: Any = None) -> tuple[Any, dict[str, Any]]:
    """Train a fresh Qwen2ForCausalLM on the corpus for `cfg.train_steps` steps; returns (model, stats).

    `callback(step, model)`, if given, is called after every step (e.g. to measure a learning curve)."""
    import torch
    import torch.nn.functional as F
    from transformers import Qwen2ForCausalLM

    from r1cli.console import log

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(model_config(cfg, tok))
        model.config._attn_implementation = "sdpa"
        n_rows = cfg.train_steps * cfg.batch_size
        t0 = time.perf_counter()
        # a few spare rows so that bucketing (which drops ragged batches) still yields train_steps batches
        encoded = encode_pairs(tok, corpus_rows(cfg, n_rows, seed))
        plan = batches(encoded, cfg.batch_size, cfg.micro_batches)
        data_s = time.perf_counter() - t0
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "norm" in n]
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.95),
            eps=1e-8,
        )
        model.train()
        pad = tok.convert_tokens_to_ids(PAD)
        tokens, losses = 0, []
        t1 = time.perf_counter()
        for step, batch in enumerate(plan):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            n_target = sum(len(seq) - start for micro in batch for seq, start in micro)
            step_loss = 0.0
            for micro in batch:
                ids, mask, labels = collate(micro, pad)
                logits = model(input_ids=ids, attention_mask=mask).logits
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                       ignore_index=-100, reduction="sum") / n_target
                loss.backward()
                step_loss += float(loss.detach())
                tokens += int(mask.sum())
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(step_loss)
            if log_every and (step + 1) % log_every == 0:
                el = time.perf_counter() - t1
                log(f"tinybase step {step + 1}/{len(plan)} loss {sum(losses[-log_every:]) / log_every:.4f} "
                    f"{tokens / el:.0f} tok/s")
            if callback is not None:
                callback(step + 1, model)
        train_s = time.perf_counter() - t1
        model.eval()
        stats = {
            "params": sum(p.numel() for p in model.parameters()),
            "train_steps": len(plan),
            "tokens": tokens,
            "train_seconds": round(train_s, 2),
            "data_seconds": round(data_s, 2),
            "tokens_per_second": round(tokens / max(train_s, 1e-9), 1),
            "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 5),
        }
        return model, stats
    finally:
        torch.set_num_threads(threads)
