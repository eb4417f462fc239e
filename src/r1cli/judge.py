"""A generative judge for answers that rules cannot check (paper §2.3.3: for data outside rule-verifiable
reasoning, "we incorporate additional data ... some of which use a generative reward model by feeding the
ground-truth and model predictions into DeepSeek-V3 for judgment").

`Judge(cfg).judge(questions, references, predictions)` shows a judge model each question, its reference answer
and the prediction, and returns True (correct), False (incorrect) or None (the judge's reply had no verdict).
The judge is either a local checkpoint (loaded once, sampled with `r1cli.generation.generate`, chat template) or
an OpenAI-compatible endpoint (`r1cli.remote.ChatClient`: concurrency, retries, timeouts).

Parsing (`parse_verdict`): a reasoning judge's `<think>…</think>` is dropped, then an explicit verdict line
("Verdict: CORRECT", `\\boxed{INCORRECT}`) wins; a bare one-word reply (yes / no / true / false / right / wrong
too) counts; otherwise the last of the words correct / incorrect / "not correct" / wrong decides (yes / no are
too common in prose to count there). Anything else is None, which callers count as not accepted.

Departure: the paper's judge is DeepSeek-V3 with an unpublished prompt; the prompt here is ours
(`JUDGE_PROMPT`), and a reply is one greedy sample by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

JUDGE_PROMPT = (
    "You are grading an answer to a question. Compare the student's final answer with the reference answer: "
    "it is correct when it means the same thing (equivalent numbers, expressions or statements; wording and "
    "formatting do not matter), and incorrect otherwise.\n\n"
    "Question:\n{question}\n\nReference answer:\n{reference}\n\nStudent's answer:\n{prediction}\n\n"
    "Reply with one word on the last line: CORRECT or INCORRECT."
)

_VERDICT_LINE = re.compile(
    r"(?:verdict|judgement|judgment|grade|answer|final)\s*[:=]\s*\**\s*(incorrect|correct|wrong|right|yes|no|true|false)\b"
    r"|\\boxed\{\s*(?:\\text\{)?\s*(incorrect|correct|wrong|right|yes|no|true|false)\b",
    re.I,
)
_WORD = re.compile(r"\b(not\s+correct|incorrect|correct|wrong)\b", re.I)
_ALONE = re.compile(r"^\W*(correct|incorrect|wrong|right|yes|no|true|false)\W*$", re.I)
_TRUE = {"correct", "right", "yes", "true"}


_MATH_WORDS = re.compile(
    r"\\[A-Za-z]+|\b(?:sin|cos|tan|cot|sec|csc|arcsin|arccos|arctan|sinh|cosh|tanh|log|ln|exp|sqrt|pi|inf|infty|"
    r"max|min|mod|gcd|lcm|deg|det)\b"
)
_TEXT_WORD = re.compile(r"[A-Za-z]{3,}")


def rule_checkable(gold: object) -> bool:
    """Whether rules (math-verify) can judge answers against this gold: a non-empty mathematical answer
    (numbers, expressions, LaTeX, a choice letter). A gold with a word of 3+ letters outside LaTeX commands and
    function names (`Paris`, `\\text{blue}`, `yes`) is free text: math-verify would read it as a product of
    symbols, so such rows go to the judge.

    >>> [rule_checkable(g) for g in ["7", "\\\\frac{1}{2}", "x^2+\\\\sin x", "(C)", "Paris", "\\\\text{Evelyn}", ""]]
    [True, True, True, True, False, False, False]
    """
    s = str(gold if gold is not None else "").strip()
    if not s:
        return False
    return _TEXT_WORD.search(_MATH_WORDS.sub(" ", s)) is None


def parse_verdict(reply: str) -> bool | None:
    """True/False from a judge's reply, None when it gives no verdict (see the module docstring)."""
    text = reply or ""
    j = text.rfind("</think>")
    if j >= 0:
        text = text[j + len("</think>") :]
    elif "<think>" in text:  # an unfinished reasoning: no verdict
        return None
    alone = _ALONE.match(text.strip())
    if alone:
        return alone.group(1).lower() in _TRUE
    explicit = _VERDICT_LINE.findall(text)
    if explicit:
        word = next(w for w in explicit[-1] if w)
        return word.lower() in _TRUE
    words = _WORD.findall(text)
    if not words:
        return None
    w = re.sub(r"\s+", " ", words[-1].lower())
    return w in _TRUE


@dataclass
class JudgeConfig:
    """The optional generative judge (for rows whose answers rules cannot check)."""

    backend: Literal["none", "local", "remote"] = field(
        default="none",
        metadata={"help": "none: no judge (unverifiable rows are rejected); local: a checkpoint sampled here; "
                  "remote: an OpenAI-compatible endpoint (url)."},
    )
    model: Optional[str] = field(
        default=None,
        metadata={"help": "local: a preset, r1cli run, HF folder or hub id; remote: the served model's name."},
    )
    url: Optional[str] = field(
        default=None, metadata={"help": "remote: the API root, e.g. http://localhost:8000/v1."}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "remote: environment variable holding the API key."}
    )
    max_new_tokens: int = field(default=512, metadata={"help": "Reply budget (reasoning judges need more)."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0 = greedy)."})
    concurrency: int = field(default=8, metadata={"help": "remote: requests in flight."})
    timeout_s: float = field(default=120.0, metadata={"help": "remote: per-request timeout (seconds)."})
    max_retries: int = field(default=5, metadata={"help": "remote: retries of a failed request."})
    max_prediction_chars: int = field(
        default=4000, metadata={"help": "Longer predictions are cut (head and tail) before judging."}
    )

    def __post_init__(self) -> None:
        if self.backend == "local" and not self.model:
            raise ValueError("judge.backend local needs judge.model (a checkpoint: preset, run folder, hub id)")
        if self.backend == "remote" and not (self.url and self.model):
            raise ValueError("judge.backend remote needs judge.url (API root, e.g. http://host:8000/v1) and "
                             "judge.model (the served model name)")
        if self.max_new_tokens < 1:
            raise ValueError(f"judge.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"judge.temperature must be >= 0, got {self.temperature}")

    @property
    def enabled(self) -> bool:
        return self.backend != "none"


def prediction_text(completion: str, max_chars: int = 4000) -> str:
    """What the judge sees of a completion: its extracted final answer, else the summary after `</think>`,
    else the whole text (cut to `max_chars`, head and tail)."""
    from r1cli.grading.answers import extract_answer
    from r1cli.prompts import split_reasoning

    ans = extract_answer(completion)
    if ans:
        return ans
    _, summary = split_reasoning(completion)
    text = (summary if summary.strip() else completion).strip()
    if len(text) > max_chars:
        text = text[: max_chars // 2] + "\n…\n" + text[-max_chars // 2 :]
    return text


class Judge:
    """A loaded judge: `judge(questions, references, predictions) -> list[bool | None]`."""

    def __init__(self, cfg: JudgeConfig, *, seed: int = 0):
        if not cfg.enabled:
            raise ValueError("Judge needs judge.backend local or remote")
        self.cfg = cfg
        self.seed = seed
        self.calls = 0
        self._model = self._tok = self._client = None
        if cfg.backend == "remote":
            from r1cli.remote import ChatClient

            self._client = ChatClient(
                cfg.url or "", cfg.model or "", api_key_env=cfg.api_key_env, timeout_s=cfg.timeout_s,
                max_retries=cfg.max_retries, concurrency=cfg.concurrency,
            )
        else:
            from r1cli.config_groups import ModelArgs
            from r1cli.models import load_model

            self._model, self._tok = load_model(ModelArgs(model=cfg.model or ""))

    def messages(self, question: str, reference: str, prediction: str) -> list[dict[str, str]]:
        pred = prediction_text(prediction, self.cfg.max_prediction_chars)
        content = JUDGE_PROMPT.format(question=question, reference=reference, prediction=pred)
        return [{"role": "user", "content": content}]

    def replies(self, questions: Sequence[str], references: Sequence[Any], predictions: Sequence[str]) -> list[str]:
        """The judge's raw replies."""
        if not (len(questions) == len(references) == len(predictions)):
            raise ValueError("judge: questions, references and predictions differ in length")
        convs = [self.messages(str(q), str(r), str(p)) for q, r, p in zip(questions, references, predictions,
                                                                         strict=True)]
        if not convs:
            return []
        self.calls += len(convs)
        if self._client is not None:
            out = self._client.chat_many(convs, n=1, temperature=self.cfg.temperature,
                                         max_tokens=self.cfg.max_new_tokens, seed=self.seed)
            return [o[0].text for o in out]
        from r1cli.generation import generate
        from r1cli.prompts import build_prompt

        tpl = "chat" if getattr(self._tok, "chat_template", None) else "plain"
        prompts = [build_prompt(c[0]["content"], tpl, self._tok, instruction=None) for c in convs]
        got = generate(self._model, self._tok, prompts, n=1, temperature=self.cfg.temperature,
                       max_new_tokens=self.cfg.max_new_tokens, seed=self.seed, progress=False)
        return [g[0].text for g in got]

    def judge(self, questions: Sequence[str], references: Sequence[Any], predictions: Sequence[str]) -> list[bool | None]:
        """True / False / None (no verdict) for each (question, reference, prediction)."""
        return [parse_verdict(r) for r in self.replies(questions, references, predictions)]


__all__ = ["JUDGE_PROMPT", "Judge", "JudgeConfig", "parse_verdict", "prediction_text", "rule_checkable"]
