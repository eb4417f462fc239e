"""Prompt templates and tag parsing, in one place.

- `R1_ZERO_TEMPLATE` is the paper's Table 1 template, verbatim (the `prompt` placeholder is filled with the
  question).
- `R1_INSTRUCTION` is the evaluation instruction from the DeepSeek-R1 model card, appended to the user turn.
- `build_prompt` renders a question for a model with one of three templates: `chat` (the tokenizer's chat
  template, optional instruction, optional `<think>\\n` prefill), `r1-zero` (Table 1 as plain text) or `plain`
  (the question as it is).
- Parsing helpers return the text inside `<think>`/`<answer>` and the content of the last `\\boxed{}`; they are
  linear in the input length and never use backtracking regexes, so a 1 MB completion costs milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {prompt}. Assistant:"
)
R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

Template = Literal["chat", "r1-zero", "plain"]


def build_prompt(
    question: str,
    template: Template = "chat",
    tokenizer: Any = None,
    *,
    instruction: str | None = R1_INSTRUCTION,
    system: str | None = None,
    think_prefix: bool = False,
) -> str:
    """Render one question as the exact text the model is conditioned on.

    `chat` needs a tokenizer with a chat template; the instruction (if any) is appended to the user turn after a
    blank line, as in the R1 model card; no system prompt unless given. `think_prefix` appends `<think>\\n` after
    the generation prompt when the template does not already end with it (R1-distill templates prefill it).
    """
    if template == "plain":
        text = question if not instruction else f"{question}\n\n{instruction}"
    elif template == "r1-zero":
        text = R1_ZERO_TEMPLATE.replace("{prompt}", question)
    elif template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("template 'chat' needs a tokenizer with a chat template; use template: plain or r1-zero")
        user = question if not instruction else f"{question}\n\n{instruction}"
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        raise ValueError(f"unknown template {template!r}: use chat, r1-zero or plain")
    if think_prefix and not text.rstrip().endswith(THINK_OPEN):
        text = text + THINK_OPEN + "\n"
    return text


def completion_text(completion: Any) -> str:
    """A completion as text: TRL passes strings, or lists of `{"role", "content"}` messages (conversational)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        return "".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in completion)
    return "" if completion is None else str(completion)


def _between(text: str, open_tag: str, close_tag: str, last: bool = False) -> str | None:
    i = text.rfind(open_tag) if last else text.find(open_tag)
    if i < 0:
        return None
    j = text.find(close_tag, i + len(open_tag))
    if j < 0:
        return None
    return text[i + len(open_tag) : j]


def extract_think(text: str) -> str | None:
    """The reasoning inside the first `<think>…</think>`; with a prefilled `<think>` (absent from the
    completion) the text before the first `</think>`. None when there is no `</think>`."""
    j = text.find(THINK_CLOSE)
    if j < 0:
        return None
    i = text.find(THINK_OPEN)
    if 0 <= i < j:
        return text[i + len(THINK_OPEN) : j]
    return text[:j]


def extract_answer_tag(text: str) -> str | None:
    """The content of the last `<answer>…</answer>` after the reasoning, stripped; None if absent."""
    j = text.rfind(THINK_CLOSE)
    tail = text[j + len(THINK_CLOSE) :] if j >= 0 else text
    got = _between(tail, ANSWER_OPEN, ANSWER_CLOSE, last=True)
    return got.strip() if got is not None else None


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, summary): the text up to and including the last `</think>`, and what follows it.
    Without `</think>` the whole text is reasoning and the summary is empty."""
    j = text.rfind(THINK_CLOSE)
    if j < 0:
        return text, ""
    k = j + len(THINK_CLOSE)
    return text[:k], text[k:]


BOXED_COMMANDS = ("\\boxed", "\\fbox")
_BRACES = re.compile(r"[{}]")


def boxed_spans(text: str) -> list[tuple[int, str]]:
    """(position, content) of every `\\boxed{…}` / `\\fbox{…}` (and `\\boxed 5`) in order, in linear time.

    Braces are matched once for the whole text (one stack pass) instead of scanning forward from every `\\boxed`,
    which is quadratic on unbalanced input (20k copies of `\\boxed{` took 129 s that way). An unbalanced box
    has no content and is skipped.
    """
    starts: list[tuple[int, str]] = []
    for cmd in BOXED_COMMANDS:
        i = text.find(cmd)
        while i >= 0:
            starts.append((i, cmd))
            i = text.find(cmd, i + len(cmd))
    if not starts:
        return []
    starts.sort()
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACES.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            match[stack.pop()] = m.start()
    out: list[tuple[int, str]] = []
    n = len(text)
    for i, cmd in starts:
        k = i + len(cmd)
        while k < n and text[k] == " ":
            k += 1
        if k < n and text[k] == "{":
            end = match.get(k)
            if end is not None:
                out.append((i, text[k + 1 : end]))
        elif k > i + len(cmd) and k < n:  # `\boxed 5`
            m_ = k
            while m_ < n and not text[m_].isspace() and text[m_] != "$":
                m_ += 1
            if m_ > k:
                out.append((i, text[k:m_]))
    return out


def all_boxed(text: str, limit: int = 64) -> list[str]:
    """Contents of every `\\boxed{}`/`\\fbox{}` in order (at most `limit`, counting from the end)."""
    return [c for _, c in boxed_spans(text)[-limit:]]


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{}` (or `\\fbox{}`), or None."""
    spans = boxed_spans(text)
    return spans[-1][1] if spans else None


def extract_final_answer(text: str) -> str | None:
    """The model's final answer: `<answer>` content (its last `\\boxed{}` if it has one) after the reasoning,
    else the last `\\boxed{}` of the summary after `</think>`, else of the whole text if there is no `</think>`.
    An answer that appears only inside the think block does not count when the completion has a `</think>`."""
    tag = extract_answer_tag(text)
    if tag is not None:
        inner = last_boxed(tag)
        return inner.strip() if inner is not None else tag
    reasoning, summary = split_reasoning(text)
    if THINK_CLOSE in text:
        b = last_boxed(summary)
    else:
        b = last_boxed(text)
    return b.strip() if b is not None else None


def render_prompt(
    question: str,
    *,
    builtin_task: bool,
    tokenizer: Any,
    template: str = "auto",
    instruction: str | None = R1_INSTRUCTION,
    think_prefix: bool = False,
) -> str:
    """The prompt text every stage conditions on, so RL rollouts and `r1 eval` see the same text.

    `template: auto` = the tokenizer's chat template when it has one (with no instruction for built-in tasks,
    whose questions already say what to do, and R1's instruction otherwise), else the R1-Zero template.
    """
    if template == "auto":
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            template = "chat"
            instruction = None if builtin_task else instruction
        else:
            template = "r1-zero"
    return build_prompt(question, template, tokenizer, instruction=instruction, think_prefix=think_prefix)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- text -> token ids
# The one prompt->token path. Every stage renders a question with `render_prompt`, then turns the text into ids with
# `encode_prompt` (never `tokenizer(text)`: a template that writes BOS plus a tokenizer that adds one gives two), and
# hands those ids to the sampler, TRL's trainers, vLLM and the judge. A template (or `think_prefix`) that ends the
# prompt inside `<think>` pre-fills the opening of the reasoning: `prefill` is that text, which belongs to the
# completion as the model wrote it (rewards, filters and eval see `prefill + completion`), and which SFT must not
# write a second time.

_ADDS_BOS: dict[int, bool] = {}


def adds_bos(tokenizer: Any) -> bool:
    """Whether encoding with special tokens puts the tokenizer's BOS first (R1 family, Llama-3.x; cached)."""
    key = id(tokenizer)
    if key not in _ADDS_BOS:
        bos = getattr(tokenizer, "bos_token_id", None)
        ids = tokenizer("a")["input_ids"] if bos is not None else []
        _ADDS_BOS[key] = bool(ids) and ids[0] == bos
    return _ADDS_BOS[key]


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Rendered prompt text -> token ids with one BOS at most: tokenized without special tokens, and the BOS the
    tokenizer would add prepended only when the text does not already start with it (a template that writes BOS)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if adds_bos(tokenizer) and (not ids or ids[0] != tokenizer.bos_token_id):
        ids = [int(tokenizer.bos_token_id), *ids]
    if not ids:
        raise ValueError("an empty prompt has nothing to condition on: give at least one token")
    return ids


def prefilled_think(prompt: str) -> str:
    """The `<think>` pre-fill at the end of a rendered prompt (e.g. `<think>\\n`), or ''."""
    i = prompt.rfind(THINK_OPEN)
    if i < 0 or prompt.find(THINK_CLOSE, i) >= 0 or prompt[i + len(THINK_OPEN):].strip():
        return ""
    return prompt[i:]


def as_written(prefill: str, completion: str) -> str:
    """The completion as the model wrote it: the pre-fill put back in front (what rewards, filters and eval read)."""
    if not prefill or completion.startswith(prefill.rstrip()):
        return completion
    return prefill + completion


def strip_prefill(prefill: str, completion: str) -> str:
    """What the model must generate after a prompt that pre-fills `prefill`: a completion stored as written (pre-fill
    included) loses it, so SFT never trains on a tag the template already wrote."""
    tag = prefill.rstrip()
    if not tag or not completion.startswith(tag):
        return completion
    rest = completion[len(tag):]
    ws = prefill[len(tag):]  # the whitespace the template wrote after the tag (e.g. "\n")
    return rest[len(ws):] if ws and rest.startswith(ws) else rest


@dataclass(frozen=True)
class PromptTokens:
    """One prompt as every stage feeds it: the rendered text, its ids (what the sampler/trainer receive) and the
    pre-filled reasoning opening ('' when the template leaves the completion to start it)."""

    text: str
    ids: list[int]
    prefill: str


def tokenize_prompt(tokenizer: Any, text: str) -> PromptTokens:
    return PromptTokens(text=text, ids=encode_prompt(tokenizer, text), prefill=prefilled_think(text))


def sft_tokens(tokenizer: Any, prompt: str, completion: str) -> dict[str, list[int]]:
    """One SFT example: `prompt_ids` (exactly what a sampling stage feeds for this prompt), then the completion's
    tokens (the pre-fill removed) and EOS; `completion_mask` is 1 on exactly those completion + EOS tokens."""
    p = tokenize_prompt(tokenizer, prompt)
    body = strip_prefill(p.prefill, completion)
    c_ids = list(tokenizer(body, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None and (not c_ids or c_ids[-1] != eos):
        c_ids.append(int(eos))
    return {
        "prompt_ids": p.ids,
        "input_ids": p.ids + c_ids,
        "completion_mask": [0] * len(p.ids) + [1] * len(c_ids),
    }
