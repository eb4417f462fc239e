"""`r1 reward-model`: train a preference reward model with TRL's `RewardTrainer` (Bradley-Terry loss on
prompt/chosen/rejected pairs) and report its held-out pairwise accuracy.

Reads top to bottom: resolve the backbone (a preset, run folder, HF folder or hub id) -> load it as a one-label
`AutoModelForSequenceClassification` (a fresh score head, seeded) -> build the pairs (the built-in synthetic
preference set, or a dataset with a column mapping) and render each response with
`r1cli.rewards.reward_model.format_pair`, the very text the `helpfulness`/`harmlessness` rewards score ->
`RewardTrainer` (full, or LoRA with the score head trained in full) -> merge a LoRA adapter -> held-out pairwise
accuracy (chosen scored above rejected; per `flaw` when the pairs have one; also for the untrained head, the
peer) -> save `<out>/model` (loadable by `AutoModelForSequenceClassification`) with the held-out score statistics
(`r1cli_reward_stats.json`) that z-score normalisation uses.
"""

from __future__ import annotations

import json
import random
from typing import Any

from r1cli.console import log
from r1cli.errors import InputArtifactError

METRICS = "metrics.jsonl"


def _rows(cfg: Any, run: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train pairs, held-out pairs) as dicts with prompt?/chosen/rejected (+ flaw when known)."""
    if cfg.input is None:
        from r1cli.tasks.preference import preference_rows

        train = preference_rows("train", cfg.train_size, seed=cfg.seed, **cfg.data_params)
        test = preference_rows("test", cfg.eval_size, seed=cfg.seed, **cfg.data_params)
        log(f"pairs: {len(train)} built-in train, {len(test)} held-out")
        return train, test
    train = _load(cfg.input, cfg.columns, run, "input")
    if cfg.eval_input:
        return train, _load(cfg.eval_input, cfg.columns, run, "eval_input")
    order = list(range(len(train)))
    random.Random(cfg.seed).shuffle(order)
    k = max(1, int(round(len(train) * cfg.eval_fraction)))
    if k >= len(train):
        raise InputArtifactError(f"input {cfg.input!r} has {len(train)} pair(s): too few to hold out a test set")
    held = set(order[:k])
    return [r for i, r in enumerate(train) if i not in held], [r for i, r in enumerate(train) if i in held]


def _load(spec: str, columns: dict[str, str], run: Any, name: str) -> list[dict[str, Any]]:
    from r1cli.data_io import load_dataset_input

    ds, ref = load_dataset_input(spec, columns=columns, name=name)
    run.add_input(ref)
    missing = [c for c in ("chosen", "rejected") if c not in ds.column_names]
    if missing:
        raise InputArtifactError(
            f"preference pairs need columns chosen and rejected (and usually prompt); {spec!r} lacks "
            f"{', '.join(missing)} (has: {', '.join(ds.column_names)})",
            hint="map your columns (columns: {chosen: ..., rejected: ...}) or write pairs with `r1 data --task preference`",
        )
    return ds.to_list()


def pair_text(tokenizer: Any, prompt: Any, response: Any) -> str:
    """One side of a pair as the text the reward model scores (conversational message lists supported)."""
    from r1cli.rewards.reward_model import format_pair

    if isinstance(response, list):  # conversational: [{"role", "content"}, ...]
        msgs = (prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}] if prompt else [])
        text = tokenizer.apply_chat_template(list(msgs) + list(response), tokenize=False)
        eos = tokenizer.eos_token
        return text + eos if eos and not text.endswith(eos) else text
    if prompt is None:  # implicit prompt: the response already holds it
        eos = tokenizer.eos_token
        return response + eos if eos and not response.endswith(eos) else response
    return format_pair(tokenizer, prompt, response)


def _token_pairs(tokenizer: Any, pairs: list[dict[str, str]]) -> list[dict[str, list[int]]]:
    """Pairs as the ids the reward model is trained and scored on (one BOS at most; TRL would add another to a
    template that writes one)."""
    from r1cli.prompts import encode_prompt

    return [{"chosen_ids": encode_prompt(tokenizer, p["chosen"]), "rejected_ids": encode_prompt(tokenizer, p["rejected"])}
            for p in pairs]


def _texts(tokenizer: Any, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"chosen": pair_text(tokenizer, r.get("prompt"), r["chosen"]),
             "rejected": pair_text(tokenizer, r.get("prompt"), r["rejected"])} for r in rows]


def pairwise_accuracy(model: Any, tokenizer: Any, pairs: list[dict[str, str]], flaws: list[Any] | None,
                      *, max_length: int, batch_size: int = 32) -> dict[str, Any]:
    """Share of held-out pairs whose chosen text scores above the rejected one (overall and per flaw), and the
    mean/std of all their scores."""
    import statistics

    from r1cli.rewards.reward_model import score_texts

    was_training = model.training
    model.eval()
    c = score_texts(model, tokenizer, [p["chosen"] for p in pairs], batch_size=batch_size, max_length=max_length)
    r = score_texts(model, tokenizer, [p["rejected"] for p in pairs], batch_size=batch_size, max_length=max_length)
    if was_training:
        model.train()
    wins = [float(a > b) for a, b in zip(c, r, strict=True)]
    out: dict[str, Any] = {"accuracy": round(sum(wins) / len(wins), 4), "pairs": len(wins),
                           "margin": round(statistics.fmean(a - b for a, b in zip(c, r, strict=True)), 4)}
    if flaws is not None:
        per: dict[str, list[float]] = {}
        for f, w in zip(flaws, wins, strict=True):
            per.setdefault(str(f), []).append(w)
        out["per_flaw"] = {f: round(sum(v) / len(v), 4) for f, v in sorted(per.items())}
    allv = c + r
    out["score_mean"] = statistics.fmean(allv)
    out["score_std"] = statistics.pstdev(allv) if len(allv) > 1 else 1.0
    return out


def _lora(cfg: Any, model: Any) -> Any:
    """A LoRA config for sequence classification: adapters on every linear layer but the score head, which PEFT
    trains in full (`modules_to_save`)."""
    import torch
    from peft import LoraConfig

    targets = list(cfg.lora_target_modules)
    if targets == ["all-linear"]:
        targets = sorted({n.split(".")[-1] for n, m in model.named_modules()
                          if isinstance(m, torch.nn.Linear) and n.split(".")[-1] != "score"})
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="SEQ_CLS")


def dry_run(cfg: Any, n: int, inputs: Any) -> Any:
    """The chosen side of the first `n` training pairs as the ids the reward model is trained on; the loss mask
    marks the last token, whose score the head reads."""
    from r1cli.dryrun import DryRun, Example
    from r1cli.models import load_tokenizer

    tok = load_tokenizer(cfg)
    train, _ = _rows(cfg, inputs)
    examples = []
    for pair in _token_pairs(tok, _texts(tok, train[:n])):
        ids = pair["chosen_ids"]
        examples.append(Example(text=tok.decode(ids), input_ids=ids, loss_mask=[0] * (len(ids) - 1) + [1],
                                prompt_ids=ids))
    return DryRun("reward-model", "reward", tok, examples, max_length=cfg.max_length)


def run(cfg: Any, run: Any) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from trl import RewardTrainer

    from r1cli.models import ADAPTER_CONFIG, default_device, model_ref, resolve_model, torch_dtype
    from r1cli.rewards.reward_model import STATS_FILE
    from r1cli.runs import last_complete_checkpoint, marker_callback
    from r1cli.trainlog import metrics_callback, run_train_loss

    run.add_input(model_ref(cfg.model))
    source = resolve_model(cfg.model)
    from pathlib import Path

    if (Path(source) / ADAPTER_CONFIG).is_file():
        raise InputArtifactError(
            f"model {cfg.model!r} is a PEFT adapter; a reward model needs a full backbone",
            hint=f"merge it first: r1 merge --model {cfg.model} --output <folder>",
        )
    kw: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.revision:
        kw["revision"] = cfg.revision
    tok = AutoTokenizer.from_pretrained(source, **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    set_seed(cfg.seed)  # the score head is initialised at random
    device = default_device()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=1, dtype=torch_dtype(cfg.dtype, device), use_safetensors=True, **kw
        )
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputArtifactError(f"cannot load {cfg.model!r} as a sequence-classification model: {first}") from None
    model.config.pad_token_id = tok.pad_token_id
    model.to(device)

    train_rows, test_rows = _rows(cfg, run)
    train = Dataset.from_list(_token_pairs(tok, _texts(tok, train_rows)))
    test = _texts(tok, test_rows)
    flaws = [r.get("flaw") for r in test_rows] if all("flaw" in r for r in test_rows) else None
    max_len = cfg.max_length or 1024
    before = pairwise_accuracy(model, tok, test, flaws, max_length=max_len)
    log(f"held-out pairwise accuracy before training (random head): {before['accuracy']:.3f}")

    if not run.resume:
        (run.path / METRICS).unlink(missing_ok=True)
    trainer = RewardTrainer(
        model=model,
        args=cfg,
        train_dataset=train,
        processing_class=tok,
        peft_config=_lora(cfg, model) if cfg.use_peft else None,
        callbacks=[marker_callback(), metrics_callback(run.path / METRICS)],
    )
    ckpt = last_complete_checkpoint(cfg.output_dir) if run.resume else None
    with run.timed("train"):
        out = trainer.train(resume_from_checkpoint=ckpt)
    final = trainer.model
    if hasattr(final, "merge_and_unload"):
        final = final.merge_and_unload()
    with run.timed("evaluate"):
        after = pairwise_accuracy(final, tok, test, flaws, max_length=max_len)
    log(f"held-out pairwise accuracy: {after['accuracy']:.3f} ({after['pairs']} pairs)")
    run.model_dir.mkdir(parents=True, exist_ok=True)
    final.save_pretrained(str(run.model_dir))
    tok.save_pretrained(str(run.model_dir))
    stats = {"mean": after["score_mean"], "std": max(after["score_std"], 1e-6), "n": 2 * after["pairs"],
             "what": "scores of the held-out chosen and rejected responses"}
    (run.model_dir / STATS_FILE).write_text(json.dumps(stats, indent=1), encoding="utf-8")
    metrics = {
        "steps": trainer.state.global_step,
        "train_loss": round(run_train_loss(trainer, out, ckpt), 5),
        "train_pairs": len(train),
        "heldout_pairs": after["pairs"],
        "heldout_accuracy": after["accuracy"],
        "heldout_margin": after["margin"],
        "heldout_accuracy_untrained": before["accuracy"],
        "resumed_from": ckpt,
    }
    if "per_flaw" in after:
        metrics["heldout_accuracy_per_flaw"] = after["per_flaw"]
    return {"metrics": metrics}
