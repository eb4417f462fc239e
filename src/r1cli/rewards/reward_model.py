"""Reward-model rewards (paper §2.3.4): `helpfulness` scores the prompt plus only the final summary, `harmlessness`
the prompt plus the whole response, reasoning included.

A reward model is any `AutoModelForSequenceClassification` folder with one label (an `r1 reward-model` run, a
local HF folder or a hub id), loaded lazily on the first call (building the reward loads nothing), frozen
(eval mode, no gradients), on `device` (auto = the policy's default device: cuda when available), and shared by
every reward that names the same model, device and dtype. Rows are scored in batches of `batch_size`.

What the reward model reads is `format_pair(tokenizer, question, response)`: the tokenizer's chat template with a
user and an assistant turn when it has one, else `question + "\\n\\n" + response`, then EOS appended as TRL's
`RewardTrainer` does — `r1 reward-model` trains on exactly this text. The question is the dataset's `question`
column (the raw prompt: `r1 rl`/`r1 align` keep it beside the rendered one), else the prompt TRL passes.

Routing: each reward judges only rows whose `kind` column is in `params.kinds` (default `[general]`) and returns
None for the others, which never reach the model; without a `kind` column every row is judged.

Normalisation (`normalize`), so reward-model scores mix with 0/1 rule rewards:
- `zscore`: (score - mean) / std, with mean/std from `params`, else from the statistics `r1 reward-model` saved
  beside the model (`r1cli_reward_stats.json`: held-out chosen and rejected responses), else running statistics
  of every score seen so far (logged once: early batches are then normalised by few samples);
- `sigmoid`: sigmoid((score - mean) / std) with the same mean/std when given or saved, else sigmoid(score)
  (the Bradley-Terry probability of beating a zero-score response);
- `none`: the raw score.

Summary: the text after the last `</think>`; a response that opens `<think>` and never closes it has an empty
summary (the reward model judges an empty answer), and a response without think tags is all summary.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from r1cli.console import log
from r1cli.prompts import THINK_CLOSE, THINK_OPEN, completion_text

STATS_FILE = "r1cli_reward_stats.json"


@dataclass
class RewardModelParams:
    """Params of `helpfulness` and `harmlessness`."""

    model: str = field(
        default="",
        metadata={"help": "Reward model: an `r1 reward-model` run, a local HF folder or a hub id (one-label "
                  "AutoModelForSequenceClassification)."},
    )
    kinds: list[str] = field(
        default_factory=lambda: ["general"],
        metadata={"help": "Row kinds (dataset `kind` column) this reward judges; other rows get None."},
    )
    normalize: Literal["zscore", "sigmoid", "none"] = field(
        default="zscore", metadata={"help": "Score normalisation: zscore, sigmoid or none (see the module doc)."}
    )
    mean: Optional[float] = field(default=None, metadata={"help": "Score mean for normalisation (null: saved/running)."})
    std: Optional[float] = field(default=None, metadata={"help": "Score std for normalisation (null: saved/running)."})
    device: str = field(default="auto", metadata={"help": "Device of the reward model: auto (cuda if any), cpu, cuda:1..."})
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        default="auto", metadata={"help": "Weights dtype; auto = float32 on CPU, bfloat16 on GPU."}
    )
    batch_size: int = field(default=16, metadata={"help": "Rows per reward-model forward."})
    max_length: int = field(
        default=1024, metadata={"help": "Tokens per scored text; longer ones keep their end (the response)."}
    )
    revision: Optional[str] = field(default=None, metadata={"help": "Hub revision of the reward model."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the reward model's own hub code."})

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model is empty: set params.model to an `r1 reward-model` run, a folder or a hub id")
        if not self.kinds:
            raise ValueError("kinds is empty: list the row kinds this reward judges, e.g. [general]")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")
        if self.std is not None and not self.std > 0:
            raise ValueError(f"std must be > 0, got {self.std}")


# ------------------------------------------------------------------------------------------------ text


def summary_of(response: str) -> str:
    """The final summary: what follows the last `</think>` ('' for unclosed reasoning; all of it without tags)."""
    j = response.rfind(THINK_CLOSE)
    if j >= 0:
        return response[j + len(THINK_CLOSE) :].strip()
    return "" if THINK_OPEN in response else response.strip()


def format_pair(tokenizer: Any, question: str, response: str) -> str:
    """The text a reward model scores for (question, response); EOS appended like TRL's RewardTrainer."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}, {"role": "assistant", "content": response}], tokenize=False
        )
    else:
        text = f"{question}\n\n{response}"
    eos = tokenizer.eos_token
    if eos and not text.endswith(eos):
        text += eos
    return text


# ------------------------------------------------------------------------------------------------ model


def resolve_reward_model(spec: str) -> str:
    """An `r1 reward-model` run folder -> its `model/`; a local HF folder as is; anything else is a hub id."""
    from r1cli.runs import resolve_input

    ref = resolve_input(spec, "model", name="reward model")
    return str(ref.path) if ref.path is not None else str(spec)


class RewardModelScorer:
    """A frozen sequence-classification model that scores texts in batches. `calls` / `rows` count forwards
    and scored rows (tests use them to check routing)."""

    def __init__(self, spec: str, *, device: str = "auto", dtype: str = "auto", revision: str | None = None,
                 trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from r1cli.errors import InputArtifactError
        from r1cli.models import default_device, torch_dtype

        self.spec = spec
        self.source = resolve_reward_model(spec)
        self.device = default_device() if device == "auto" else device
        kw: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if revision:
            kw["revision"] = revision
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source, **kw)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                self.source, dtype=torch_dtype(dtype, self.device), use_safetensors=True, **kw
            )
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise InputArtifactError(f"cannot load reward model {spec!r}: {first}") from None
        if self.model.config.num_labels != 1:
            raise InputArtifactError(
                f"reward model {spec!r} has {self.model.config.num_labels} labels, a reward model has 1",
                hint="train one with `r1 reward-model`, or pick a one-label reward model",
            )
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(self.device).eval().requires_grad_(False)
        self.stats: dict[str, float] | None = None
        stats = Path(self.source) / STATS_FILE
        if stats.is_file():
            self.stats = json.loads(stats.read_text(encoding="utf-8"))
        self.calls = 0
        self.rows = 0
        self._lock = threading.Lock()

    def score(self, texts: Sequence[str], *, batch_size: int = 16, max_length: int = 1024) -> list[float]:
        """Raw scores [len(texts)] (one logit per text), batched and without gradients."""
        with self._lock:
            out = score_texts(self.model, self.tokenizer, texts, batch_size=batch_size, max_length=max_length)
            self.calls += -(-len(texts) // batch_size)
            self.rows += len(texts)
        return out


def score_texts(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 16,
                max_length: int = 1024) -> list[float]:
    """Scores of a one-label sequence-classification `model` for `texts` (already formatted by `format_pair`):
    batches of [b, L] token ids (`r1cli.prompts.encode_prompt`: one BOS at most; truncated from the left) ->
    logits [b, 1] -> floats."""
    import torch

    from r1cli.prompts import encode_prompt

    device = next(model.parameters()).device
    out: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            # the ids `r1 reward-model` trains on; cut from the left to keep the response and the last token
            ids = [encode_prompt(tokenizer, t)[-max_length:] for t in texts[i : i + batch_size]]
            enc = tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(device)
            out.extend(float(x) for x in model(**enc).logits[:, 0].float().cpu())
    return out


_SCORERS: dict[tuple, RewardModelScorer] = {}


def get_scorer(p: RewardModelParams) -> RewardModelScorer:
    """The shared scorer of (model, device, dtype, revision), loaded on first use."""
    key = (p.model, p.device, p.dtype, p.revision, p.trust_remote_code)
    if key not in _SCORERS:
        log(f"reward model: loading {p.model} ({p.device})")
        _SCORERS[key] = RewardModelScorer(p.model, device=p.device, dtype=p.dtype, revision=p.revision,
                                          trust_remote_code=p.trust_remote_code)
    return _SCORERS[key]


# ------------------------------------------------------------------------------------------------ normalisation


class Normalizer:
    """Maps raw scores to normalised ones per `RewardModelParams.normalize` (running stats when none are known)."""

    def __init__(self, p: RewardModelParams, saved: dict[str, float] | None) -> None:
        self.mode = p.normalize
        self.mean, self.std = p.mean, p.std
        if self.mean is None and saved:
            self.mean = float(saved["mean"])
        if self.std is None and saved:
            self.std = max(float(saved["std"]), 1e-6)
        self.running = self.mode == "zscore" and (self.mean is None or self.std is None)
        self._n, self._m, self._s = 0, 0.0, 0.0
        self._warned = False

    def __call__(self, raw: list[float]) -> list[float]:
        if self.mode == "none":
            return list(raw)
        if self.running:
            for x in raw:  # Welford
                self._n += 1
                d = x - self._m
                self._m += d / self._n
                self._s += d * (x - self._m)
            if not self._warned:
                log("reward model: no score statistics given or saved; z-scores use running statistics")
                self._warned = True
            mean = self.mean if self.mean is not None else self._m
            std = self.std if self.std is not None else math.sqrt(self._s / self._n) if self._n > 1 else 1.0
            return [(x - mean) / max(std, 1e-6) for x in raw]
        mean = self.mean if self.mean is not None else 0.0
        std = self.std if self.std is not None else 1.0
        z = [(x - mean) / std for x in raw]
        if self.mode == "zscore":
            return z
        return [1.0 / (1.0 + math.exp(-max(min(v, 60.0), -60.0))) for v in z]


# ------------------------------------------------------------------------------------------------ rewards


def _make(p: RewardModelParams, part: Literal["summary", "whole"]):
    state: dict[str, Any] = {}

    def reward(completions: Sequence[Any], prompts: Sequence[Any] | None = None, **columns: Any) -> list:
        n = len(completions)
        kinds = columns.get("kind")
        rows = [i for i in range(n) if kinds is None or kinds[i] in p.kinds]
        out: list[float | None] = [None] * n
        if not rows:
            return out
        questions = columns.get("question") or prompts
        if questions is None:
            raise ValueError("reward-model rewards need the prompt: a `question` column or TRL's `prompts`")
        if "scorer" not in state:
            state["scorer"] = get_scorer(p)
            state["norm"] = Normalizer(p, state["scorer"].stats)
        scorer: RewardModelScorer = state["scorer"]
        texts = []
        for i in rows:
            resp = completion_text(completions[i])
            resp = summary_of(resp) if part == "summary" else resp
            texts.append(format_pair(scorer.tokenizer, completion_text(questions[i]), resp))
        vals = state["norm"](scorer.score(texts, batch_size=p.batch_size, max_length=p.max_length))
        for i, v in zip(rows, vals, strict=True):
            out[i] = v
        return out

    reward.state = state  # type: ignore[attr-defined]  # tests read state["scorer"].calls
    return reward


def build_helpfulness(p: RewardModelParams):
    """Prompt + the final summary only (the text after `</think>`)."""
    return _make(p, "summary")


def build_harmlessness(p: RewardModelParams):
    """Prompt + the whole response, reasoning included."""
    return _make(p, "whole")


__all__ = ["RewardModelParams", "RewardModelScorer", "Normalizer", "build_harmlessness", "build_helpfulness",
           "format_pair", "get_scorer", "score_texts", "summary_of"]
