"""The embedded tiny base model: a byte-level BPE tokenizer and a small Qwen2 causal LM, built here from scratch.

`ensure_base(preset)` trains the tokenizer, pretrains the model on the built-in `arith` corpus for a fixed number
of steps (deterministic by seed) and saves a plain Hugging Face folder (config.json, model.safetensors, tokenizer
files with a ChatML chat template) that `AutoModelForCausalLM` / `AutoTokenizer.from_pretrained` load without
r1cli. Builds are cached under `$R1CLI_CACHE` (default `~/.cache/r1cli`) by a hash of the full build config and
`TINYBASE_VERSION`; a cached build counts only when its manifest (written last, then the folder renamed into place)
matches the key and the files' hashes.

Format the model learns: `build_prompt(question, "chat", tok, instruction=None)`, then a completion
`<think>\\n...\\n</think>\\n<answer>\\nN\\n</answer>`, then `<|im_end|>` (the EOS). The R1 tags are ordinary text
(TRL decodes completions with special tokens skipped); only `<|im_start|>`, `<|im_end|>` and `<|endoftext|>` (pad)
are special. The BPE is trained with Qwen2's own pre-tokenization (NFC, Qwen2's split regex, ByteLevel without
regex) because transformers 5 rebuilds a qwen2 tokenizer's pre-tokenizer on load.

Why the corpus has two solution styles (room for RL; see ../shared/notes/grpo-tiny.md). With one style GRPO moved
accuracy ~1 point: a binary reward on a few thousand prompts cannot out-teach ~100k supervised examples. RL shows
its effect when the base *sometimes* does something that pays off. So each pretraining completion is written in
one of two styles, chosen by the first word after `<think>\\n`:

- `detailed` ("Step by step:", a minority of the corpus, `detailed_share`): one line per prompt line,
  `c: 13+7=20`. Each step is trivial (a one-digit addition to a total copied from the line above) and its operand
  is found by its label `c:` in the prompt — a content lookup — instead of by counting lines, which the tiny model
  could not do (it fetched term k right 12–15% of the time for k >= 3 in the note's running-sum base).
- `terse` ("All at once.", the majority): the answer directly, i.e. a sum of 6–8 signed digits in one forward
  pass, which the model gets right much less often.

The corpus starts at `detailed_share_start` (50%) detailed and anneals to `detailed_share` (25%) by 75% of the
steps: the early excess teaches the skill, the late mix sets the style prior. Every optimizer step holds the corpus
mix (rows sorted by length into accumulated micro-batches): with length-bucketed steps, whole steps were one style
and the style prior swung from batch to batch (a base built that way chose `detailed` 0.8% of the time).

The base therefore picks the more reliable style only sometimes; GRPO can raise accuracy (and response length,
the paper's "thinks longer") by shifting that one early choice. Measure the precondition with
`evaluate_accuracy(..., prefix=task.style_prefix(style))`: the forced detailed style must be clearly more accurate
than the forced terse one. Measured on the default preset (`tiny`, seed 0, 6-8 steps per problem, 1.69M params,
800 steps x 32 rows = 2.6M tokens, 2 threads on an idle 2-core machine: 6.0k tokens/s, 433 s), on 1,000 held-out
problems: T=1 12.8% ± 1.1 with the detailed style chosen 24%; forced detailed 36.5% ± 1.5, forced terse
6.5% ± 0.8; T=0.6 11.5%; greedy 6.9% (always terse); 63% of G=8 groups have reward variance. Shifting the one
style token is worth ~+24 points to RL. The same recipe with 8-10 steps gave 4.9% at T=1 (a 2-thread build;
an earlier 1-thread build of it measured 13.7%, so builds vary by several points), forced detailed 33%, terse
4.4%. Per-line diagnosis of forced greedy traces (8-10 steps): label 100%, running-total copy 100%, one-digit
sums 98.7%, operand fetched by label 87.8% (100% on lines 1-2, 70% on lines 9-10) — the lookup, not the
arithmetic, limits the detailed style. An earlier build with length-bucketed (single-style) steps reached only
3.8% natural / 0.2% forced detailed at step 300 of 800. Under CPU contention use 1 torch thread or
OMP_WAIT_POLICY=PASSIVE: OpenMP spin-waits made a 2-thread build ~7x slower when other processes held the cores.

Opt-in third style, for the language-mixing finding (preset `tiny-mix`; `mixed_share` > 0 needs a task with a
`mixed` style, e.g. `arith` with `mixed_style`): a share `mixed_share` of the detailed-style rows is written in
the `mixed` version instead (the same steps with Chinese words, see `r1cli.tasks.arith`), drawn with a separate
RNG, so the detailed/terse choice of every row is that of the same preset without it. With `mixed_share` = 0 (every
other preset) the corpus, the tokenizer and the cache key are those of a build without the field.

Departures from a real base: the corpus is one synthetic task, and the style prior is
set by the corpus mix rather than learned from the web.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1cli.artifacts import sha256_file

TINYBASE_VERSION = "1"
MANIFEST = "r1cli_tinybase.json"
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
PAD, BOS_TURN, EOS = SPECIALS
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen2's split regex (transformers' tokenization_qwen2.PRETOKENIZE_REGEX), repeated so the BPE is trained with it
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


@dataclass(frozen=True)
class TinyBaseConfig:
    """Everything that determines a tiny base build (its hash is the cache key)."""

    vocab_size: int = field(default=384, metadata={"help": "BPE vocabulary size, special tokens included."})
    hidden_size: int = field(default=192, metadata={"help": "Model width."})
    intermediate_size: int = field(default=512, metadata={"help": "MLP width."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Transformer layers."})
    num_attention_heads: int = field(default=4, metadata={"help": "Query heads."})
    num_key_value_heads: int = field(default=2, metadata={"help": "Key/value heads (GQA)."})
    max_position_embeddings: int = field(default=512, metadata={"help": "Longest sequence."})
    rope_theta: float = field(default=10000.0, metadata={"help": "RoPE base."})
    task: str = field(default="arith", metadata={"help": "Built-in task of the pretraining corpus."})
    task_params: tuple[tuple[str, Any], ...] = field(
        default=(("max_terms", 8), ("min_terms", 6)),
        metadata={"help": "The task's params (sorted items); spelled out so they are part of the cache key."},
    )
    detailed_share: float = field(
        default=0.25, metadata={"help": "Share of detailed-style completions at the end of pretraining (the style prior)."}
    )
    detailed_share_start: float = field(
        default=0.5,
        metadata={"help": "Share of detailed-style completions at step 0, annealed linearly to detailed_share over "
                  "the first 75% of steps (more worked traces early teach the skill; the late mix sets the prior)."},
    )
    mixed_share: float = field(
        default=0.0,
        metadata={"help": "Opt-in: share of the detailed-style rows written in the task's `mixed` style instead "
                  "(the same solution with words of another language; the language-mixing finding). 0: off."},
    )
    micro_batches: int = field(
        default=4, metadata={"help": "Each step's rows are sorted by length and run as this many accumulated "
                             "micro-batches (little padding, and every step still sees the corpus mix)."}
    )
    train_steps: int = field(default=800, metadata={"help": "Optimizer steps (the budget is in steps, not seconds)."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per step."})
    lr: float = field(default=3e-3, metadata={"help": "Peak AdamW learning rate."})
    warmup_steps: int = field(default=40, metadata={"help": "Linear warmup steps."})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "Cosine decay floor, as a share of lr."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay."})
    tokenizer_rows: int = field(default=3000, metadata={"help": "Task rows used to train the BPE."})
    threads: int = field(default=2, metadata={"help": "torch threads while training."})

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        for name in ("detailed_share", "detailed_share_start", "mixed_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 1 <= self.micro_batches <= self.batch_size:
            raise ValueError(f"micro_batches must be in 1..batch_size, got {self.micro_batches}")
        if self.train_steps < 1:
            raise ValueError(f"train_steps must be >= 1, got {self.train_steps}")

    def fields(self) -> dict[str, Any]:
        """The config as a dict; the opt-in `mixed_share` is left out when off, so the cache key and the build
        manifest of every preset without it are those from before the field existed."""
        out = dataclasses.asdict(self)
        if out["mixed_share"] == 0.0:
            del out["mixed_share"]
        return out

    def key(self, seed: int) -> str:
        fields = self.fields()
        blob = json.dumps({"version": TINYBASE_VERSION, "seed": seed, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


PRESETS: dict[str, TinyBaseConfig] = {
    "tiny": TinyBaseConfig(),
    "tiny-test": TinyBaseConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        train_steps=40,
        batch_size=32,
        warmup_steps=5,
        tokenizer_rows=500,
    ),
    # the language-mixing finding: `tiny` with half of its detailed solutions written with Chinese words
    "tiny-mix": TinyBaseConfig(task_params=(("max_terms", 8), ("min_terms", 6), ("mixed_style", True)), mixed_share=0.5),
}


def preset_config(preset: str, train_steps: int | None = None, **overrides: Any) -> TinyBaseConfig:
    from r1cli.errors import ConfigError

    if preset not in PRESETS:
        raise ConfigError(f"unknown tiny preset {preset!r}", hint=f"presets: {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    if train_steps is not None:
        overrides["train_steps"] = int(train_steps)
    if "task_params" in overrides and isinstance(overrides["task_params"], dict):
        overrides["task_params"] = tuple(sorted(overrides["task_params"].items()))
    try:
        return dataclasses.replace(cfg, **overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"tiny base config: {e}") from None


def cache_root() -> Path:
    return Path(os.environ.get("R1CLI_CACHE") or Path.home() / ".cache" / "r1cli").expanduser()


# ---------------------------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A Qwen2 tokenizer (transformers) whose byte-level BPE is trained on `texts` with Qwen2's pre-tokenization.

    Special tokens: `<|endoftext|>` (pad) = 0, `<|im_start|>` = 1, `<|im_end|>` (EOS) = 2; ChatML chat template.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Qwen2Tokenizer(
        vocab=dict(model["vocab"]),
        merges=merges,
        unk_token=None,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=[BOS_TURN],
        model_max_length=2048,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


# ---------------------------------------------------------------------------------------------------------------
# corpus


def detailed_share_at(step: int, cfg: TinyBaseConfig) -> float:
    """The detailed-style share of step `step`'s rows: `detailed_share_start` annealed linearly to
    `detailed_share` over the first 75% of steps, then held."""
    frac = min(1.0, step / max(1.0, 0.75 * cfg.train_steps))
    return cfg.detailed_share_start + (cfg.detailed_share - cfg.detailed_share_start) * frac


def corpus_rows(cfg: TinyBaseConfig, n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (question, completion) pairs from the task's train split, in training order (row i is used at step
    i // batch_size); each completion is in the detailed style with probability `detailed_share_at(step)`
    (tasks with one style always use it). With `mixed_share` > 0, a detailed row is written in the `mixed` style
    with that probability (a separate RNG: the detailed/terse choices do not change)."""
    from r1cli.errors import ConfigError
    from r1cli.tasks import get_task
    from r1cli.tasks.base import PRETRAIN

    task = get_task(cfg.task, **dict(cfg.task_params))
    rng = random.Random(f"r1cli:tinybase:styles:{seed}")
    mix_rng = random.Random(f"r1cli:tinybase:mixed:{seed}")
    if cfg.mixed_share > 0 and "mixed" not in task.styles:
        raise ConfigError(f"mixed_share > 0 needs a task with a 'mixed' style; {cfg.task!r} has {task.styles}",
                          hint="use task arith with task_params mixed_style: true, or mixed_share 0")
    two = "terse" in task.styles and "detailed" in task.styles
    out = []
    for i, row in enumerate(task.generate(PRETRAIN, n, seed=seed, unique=False)):
        if two:
            style = "detailed" if rng.random() < detailed_share_at(i // cfg.batch_size, cfg) else "terse"
            if style == "detailed" and cfg.mixed_share > 0 and mix_rng.random() < cfg.mixed_share:
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


# ---------------------------------------------------------------------------------------------------------------
# model and pretraining


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


# ---------------------------------------------------------------------------------------------------------------
# build and cache


def build(cfg: TinyBaseConfig, seed: int, out: Path) -> dict[str, Any]:
    """Train tokenizer and model and save them to `out` (a plain HF folder); the manifest is written last."""
    from r1cli.tasks import available_tasks, get_task
    from r1cli.tasks.base import PRETRAIN

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    # tokenizer corpus: the pretraining task in both styles plus the other built-in tasks, and the chat markup
    texts: list[str] = []
    for name in available_tasks():
        task = get_task(name, **(dict(cfg.task_params) if name == cfg.task else {}))
        k = cfg.tokenizer_rows if name == cfg.task else max(1, cfg.tokenizer_rows // 10)
        for row in task.generate(PRETRAIN, k, seed=seed + 1000, unique=False):
            # the chat markup around each text (special tokens themselves are not BPE-trained)
            texts.append(f"user\n{row['prompt']}\nassistant\n")
            texts.extend(task.solution(row, style=s) for s in task.styles)
    tok = train_tokenizer(texts, cfg.vocab_size)
    tok_s = time.perf_counter() - t0
    model, stats = pretrain(cfg, tok, seed)
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids(EOS)
    model.generation_config.pad_token_id = tok.convert_tokens_to_ids(PAD)
    model.generation_config.bos_token_id = None
    model.save_pretrained(out)
    tok.save_pretrained(out)
    stats.update(
        preset_config=cfg.fields(),
        seed=seed,
        key=cfg.key(seed),
        tinybase_version=TINYBASE_VERSION,
        tokenizer_seconds=round(tok_s, 2),
        build_seconds=round(time.perf_counter() - t0, 2),
    )
    files = {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**stats, "files": files}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, out / MANIFEST)
    return manifest


def build_info(folder: str | Path) -> dict[str, Any] | None:
    """The build manifest of a tiny base folder (params, timings, tokens/s, config), or None."""
    p = Path(folder) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(folder: Path, key: str) -> bool:
    """A cached build counts only if its manifest exists, has our key and every listed file has its hash."""
    info = build_info(folder)
    if not info or info.get("key") != key or not info.get("files"):
        return False
    try:
        return all(sha256_file(folder / name) == h for name, h in info["files"].items())
    except OSError:
        return False


@contextlib.contextmanager
def _lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_base(preset: str = "tiny", seed: int = 0, train_steps: int | None = None, cache: bool = True,
                **overrides: Any) -> Path:
    """The folder of the tiny base `preset` (built now, or reused from the cache when `cache`).

    The folder name holds the preset, seed and config-hash prefix; it is built in a temporary sibling and renamed
    into place after its manifest is written, under a file lock, so concurrent callers build it once and a killed
    build never looks complete. `cache=False` rebuilds and replaces the cached folder.
    """
    from r1cli.console import log, release_held

    cfg = preset_config(preset, train_steps, **overrides)
    key = cfg.key(seed)
    root = cache_root() / "tinybase"
    final = root / f"{preset}-s{seed}-{key[:16]}"
    if cache and is_complete(final, key):
        return final
    with _lock(root / f".{final.name}.lock"):
        if cache and is_complete(final, key):
            return final
        tmp = root / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        release_held()  # minutes of pretraining: its progress shows even inside a stage's held setup
        log(f"building tiny base {preset!r} (seed {seed}, {cfg.train_steps} steps) in {final}")
        try:
            build(cfg, seed, tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------------------------
# held-out accuracy


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


def main(argv: list[str] | None = None) -> None:
    """`python -m r1cli.tinybase [--preset tiny] [--seed 0] [--train-steps N] [--n 1000]`: build (or reuse) a tiny
    base and print its `style_report` as one JSON line on stdout."""
    import argparse

    import torch

    ap = argparse.ArgumentParser(prog="python -m r1cli.tinybase", description=main.__doc__)
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also copy the built folder here (a plain HF folder for --model)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    path = ensure_base(a.preset, seed=a.seed, train_steps=a.train_steps)
    if a.out:
        out = Path(a.out)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(path, out, ignore=lambda d, names: [n for n in names if n.endswith(".lock")])
        path = out
    print(json.dumps({"preset": a.preset, "seed": a.seed, "path": str(path), **style_report(path, n=a.n, seed=a.seed)}))


if __name__ == "__main__":
    main()
