"""`--dry-run`: the first examples of a stage exactly as it would feed them, with the checks that catch a prompt or
sequence the model never sees at inference. No weights are loaded and no output folder is made.

Each stage module offers `dry_run(cfg, rows, inputs) -> DryRun` built from its own prompt/row code (so what is
shown is what would be trained on or sampled from); this module turns those examples into the report:

- sampling stages (rl, reject-sample, align, distill's teacher, eval): `prompt_ids` is what the sampler receives;
  `input_ids` = `prompt_ids`, `loss_mask` all 0;
- SFT-type stages (coldstart, distill's student): `input_ids` is the whole training sequence, `loss_mask` 1 on
  exactly the tokens the loss covers;
- reward-model: `input_ids` is the chosen side of a pair, `loss_mask` 1 on the last token, whose score the head
  reads.

Checks: one BOS at most, the `<think>` pre-fill written once, the prompt not truncated (it fits the model's context
with the generation budget, or the sequence fits `max_length`), a non-empty loss mask, and the EOS the stage stops
on (or ends a training sequence with). A failed check is printed as a warning on a real run too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from r1cli.prompts import THINK_OPEN


@dataclass
class Example:
    text: str = field(metadata={"help": "The decoded sequence (special tokens kept)."})
    input_ids: list[int] = field(metadata={"help": "Whole sequence: the training sequence, or the prompt ids."})
    loss_mask: list[int] = field(metadata={"help": "1 on the tokens the loss covers (all 0 for sampling)."})
    prompt_ids: list[int] = field(metadata={"help": "The prompt part, as a sampler receives it."})


@dataclass
class DryRun:
    """What a stage would feed: its examples and what a check needs to know about them."""

    stage: str
    kind: str  # "sampling" | "sft" | "reward"
    tokenizer: Any
    examples: list[Example]
    stop_ids: list[int] = field(default_factory=list)  # EOS ids the sampler stops on (sampling stages)
    max_new_tokens: int | None = None
    max_length: int | None = None  # longest training sequence (SFT) / context (model config)
    notes: list[str] = field(default_factory=list)


class InputRecorder:
    """Stands in for a run folder while a stage reads its inputs: records them, writes nothing."""

    def __init__(self) -> None:
        self.inputs: list[str] = []
        self.path = None
        self.resume = False

    def add_input(self, ref: Any) -> None:
        self.inputs.append(str(getattr(ref, "spec", ref)))


def sampling_example(tokenizer: Any, prompt_text: str) -> Example:
    from r1cli.prompts import encode_prompt

    ids = encode_prompt(tokenizer, prompt_text)
    return Example(text=tokenizer.decode(ids), input_ids=ids, loss_mask=[0] * len(ids), prompt_ids=ids)


def sft_example(tokenizer: Any, prompt_text: str, completion: str) -> Example:
    from r1cli.prompts import sft_tokens

    t = sft_tokens(tokenizer, prompt_text, completion)
    return Example(text=tokenizer.decode(t["input_ids"]), input_ids=t["input_ids"], loss_mask=t["completion_mask"],
                   prompt_ids=t["prompt_ids"])


def sampling_dry_run(stage: str, cfg: Any, tokenizer: Any, prompts: list[str], *, model: str | None = None) -> DryRun:
    """The prompts of a sampling stage as its sampler receives them (`model`: the sampled model, default
    `cfg.model`; the generation budget is the config's `max_completion_length` or `max_new_tokens`)."""
    model = model or cfg.model
    budget = getattr(cfg, "max_completion_length", None) or getattr(cfg, "max_new_tokens", None)
    d = DryRun(stage, "sampling", tokenizer, [sampling_example(tokenizer, p) for p in prompts],
               stop_ids=stop_ids(model, tokenizer), max_new_tokens=budget, max_length=context_length(model))
    if any(_has_system_turn(p) for p in prompts) and not getattr(cfg, "system", None):
        d.notes.append("the chat template adds its own default system prompt (no system prompt was asked for)")
    return d


def _has_system_turn(text: str) -> bool:
    """A system turn in a rendered prompt (ChatML, Llama-3 headers, R1's system text before the first user)."""
    return any(m in text for m in ("<|im_start|>system", "<|start_header_id|>system"))


def stop_ids(model_spec: str, tokenizer: Any) -> list[int]:
    """EOS ids a sampler stops on: the tokenizer's and the model folder's generation config's (no weights read)."""
    from types import SimpleNamespace

    from r1cli.generation import eos_token_ids

    gen = None
    try:
        from transformers import GenerationConfig

        from r1cli.models import resolve_model

        gen = GenerationConfig.from_pretrained(resolve_model(model_spec))
    except Exception:  # no generation_config.json (or an endpoint): the tokenizer's EOS alone
        gen = None
    return eos_token_ids(SimpleNamespace(generation_config=gen), tokenizer)


def context_length(model_spec: str) -> int | None:
    """The model's context (max_position_embeddings) from its config, without loading weights; None if unknown."""
    try:
        from transformers import AutoConfig

        from r1cli.models import resolve_model

        return getattr(AutoConfig.from_pretrained(resolve_model(model_spec)), "max_position_embeddings", None)
    except Exception:
        return None


def checks(d: DryRun) -> list[dict[str, Any]]:
    """The checks of every example of `d`: [{name, ok, detail}] (one entry per check, the first failure named)."""
    tok = d.tokenizer
    bos = getattr(tok, "bos_token_id", None)
    eos_train = getattr(tok, "eos_token_id", None)
    out: list[dict[str, Any]] = []

    def add(name: str, bad: list[str], ok_detail: str) -> None:
        out.append({"name": name, "ok": not bad, "detail": bad[0] if bad else ok_detail})

    # a BOS the template wrote and another the tokenizer added sit side by side at the start (SmolLM2's BOS is
    # `<|im_start|>`, which also opens every later turn: only the start is the tokenizer's business)
    bad = [f"example {i}: starts with {ex.input_ids[:2].count(bos)} BOS tokens" for i, ex in enumerate(d.examples)
           if bos is not None and ex.input_ids[:2].count(bos) > 1]
    add("one_bos", bad, f"one BOS {tok.bos_token!r} at most at the start" if bos is not None
        else "the tokenizer has no BOS")

    bad = [f"example {i}: {THINK_OPEN} written {ex.text.count(THINK_OPEN)} times" for i, ex in enumerate(d.examples)
           if ex.text.count(THINK_OPEN) > 1]
    prefilled = sum(tok.decode(ex.prompt_ids).rstrip().endswith(THINK_OPEN) for ex in d.examples)
    add("prefill_once", bad, f"{THINK_OPEN} at most once ({prefilled}/{len(d.examples)} prompts pre-fill it)")

    limit = d.max_length
    if d.kind == "sampling":
        need = [len(ex.prompt_ids) + (d.max_new_tokens or 0) for ex in d.examples]
        bad = [f"example {i}: prompt {len(ex.prompt_ids)} + max_new_tokens {d.max_new_tokens} > context {limit}"
               for i, (ex, n) in enumerate(zip(d.examples, need, strict=True)) if limit and n > limit]
        detail = f"longest prompt {max((len(e.prompt_ids) for e in d.examples), default=0)} tokens" + (
            f" + {d.max_new_tokens} new <= context {limit}" if limit else " (model context unknown)")
    else:
        bad = [f"example {i}: {len(ex.input_ids)} tokens > max_length {limit}"
               for i, ex in enumerate(d.examples) if limit and len(ex.input_ids) > limit]
        detail = f"longest sequence {max((len(e.input_ids) for e in d.examples), default=0)} tokens" + (
            f" <= max_length {limit}" if limit else "")
    add("not_truncated", bad, detail)

    if d.kind == "sampling":
        out.append({"name": "loss_mask", "ok": True, "detail": "sampling stage: no token is trained on these ids"})
    else:
        bad = [f"example {i}: empty loss mask" for i, ex in enumerate(d.examples) if not any(ex.loss_mask)]
        add("loss_mask", bad, "; ".join(f"example {i}: {sum(ex.loss_mask)} of {len(ex.input_ids)} tokens trained"
                                        for i, ex in enumerate(d.examples[:4])))

    if d.kind == "sampling":
        names = [tok.convert_ids_to_tokens(i) for i in d.stop_ids]
        add("eos", [] if d.stop_ids else ["no EOS id: sampling runs to max_new_tokens every time"],
            f"stops on {', '.join(map(str, names))}")
    else:
        bad = [f"example {i}: the last trained token is {tok.convert_ids_to_tokens(ex.input_ids[-1])!r}, not EOS"
               for i, ex in enumerate(d.examples) if eos_train is None or ex.input_ids[-1] != eos_train]
        add("eos", bad, f"every sequence ends with EOS {tok.eos_token!r}")
    return out


def report(d: DryRun, *, as_json: bool) -> None:
    """Print the examples (text with the trained tokens marked, or one JSON object) on stdout."""
    from r1cli.console import emit_json, out

    ch = checks(d)
    if as_json:
        emit_json({"stage": d.stage, "examples": [
            {"text": e.text, "input_ids": e.input_ids, "loss_mask": e.loss_mask, "prompt_ids": e.prompt_ids}
            for e in d.examples], "checks": ch})
        return
    from rich.markup import escape

    con = out()
    for i, e in enumerate(d.examples):
        con.print(f"[bold]example {i}[/] ({len(e.prompt_ids)} prompt tokens, {len(e.input_ids)} in all, "
                  f"{sum(e.loss_mask)} trained)")
        con.print(_marked(d.tokenizer, e), highlight=False)
        con.print(f"[dim]prompt_ids: {escape(json.dumps(e.prompt_ids))}[/]")
    for note in d.notes:
        con.print(f"note: {escape(note)}", highlight=False)
    for c in ch:
        mark = "[green]ok[/]" if c["ok"] else "[red]FAIL[/]"
        con.print(f"{mark} {c['name']}: {escape(c['detail'])}", highlight=False)


def _marked(tokenizer: Any, e: Example) -> str:
    """The sequence with the trained tokens in green (rich markup), special tokens kept."""
    from rich.markup import escape

    parts: list[str] = []
    i = 0
    while i < len(e.input_ids):
        j = i
        while j < len(e.input_ids) and e.loss_mask[j] == e.loss_mask[i]:
            j += 1
        text = escape(tokenizer.decode(e.input_ids[i:j]))
        parts.append(f"[green]{text}[/]" if e.loss_mask[i] else f"[cyan]{text}[/]")
        i = j
    return "".join(parts)


def warn_failed(d: DryRun) -> None:
    """On a real run: each failed check as one warning line on stderr."""
    from r1cli.console import log

    for c in checks(d):
        if not c["ok"]:
            log(f"[yellow]warning[/]: {c['name']}: {c['detail']}")
