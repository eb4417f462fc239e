"""`language_consistency`: the share of chain-of-thought words written in the target language (paper §2.3.3).

The paper adds this reward to the accuracy reward to stop language mixing in the CoT; it measures "the
proportion of target language words in the CoT". How we count (the measurements behind each choice are in
`docs/design-notes.md`):

1. The CoT is the text inside `<think>…</think>` (or before `</think>` when the template prefilled `<think>`);
   a completion without `</think>` counts whole.
2. LaTeX is stripped first (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`, `\\begin{env}…\\end{env}`, `\\commands`), with a
   linear scanner; digits, punctuation and one-letter words (variables) are not words.
3. Words are letter runs; each Han or kana character is one word (CJK is written without spaces).
4. Each word's Unicode script decides when only one candidate language uses that script (a Cyrillic word is not
   English, a Han word is Chinese when Japanese is not a candidate) — exact and cheap.
5. Words whose script several candidates share (Latin for en/fr/de/es) are attributed per chunk of consecutive
   sentences (at least `min_chunk_words` such words) to the language lingua detects for that chunk, with a
   detector restricted to the candidates of that script (built once per process). Never word by word: single
   words are unreliable (47-71% right on pure English).

Deterministic (lingua's models are fixed; no sampling). None when there is nothing to judge: no words, or only
a handful (< `min_chunk_words`) in a script several candidates share, such as "So x = 5.". Departure from the paper: the paper does not say how words are assigned a language; this is our method.
Long CoTs are capped at `max_chars` (head and tail halves) and at `max_chunks` detector calls.

Example::

    >>> fn = get_reward("language_consistency", language="en")
    >>> fn(["<think>\\nWe add the two numbers and get the total.\\n</think>\\n<answer>\\n5\\n</answer>"])
    [1.0]
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from r1cli.prompts import THINK_CLOSE, THINK_OPEN, completion_text, extract_think

# language (ISO 639-1) -> the scripts it is written in
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{
        c: frozenset({"Latin"})
        for c in [
            "en",
            "fr",
            "de",
            "es",
            "it",
            "pt",
            "nl",
            "pl",
            "tr",
            "vi",
            "id",
            "sv",
            "da",
            "nb",
            "fi",
            "cs",
            "ro",
            "hu",
            "ca",
        ]
    },
    "zh": frozenset({"Han"}),
    "ja": frozenset({"Han", "Kana"}),
    "ko": frozenset({"Hangul"}),
    **{c: frozenset({"Cyrillic"}) for c in ["ru", "uk", "bg", "sr"]},
    "ar": frozenset({"Arabic"}),
    "fa": frozenset({"Arabic"}),
    "he": frozenset({"Hebrew"}),
    "el": frozenset({"Greek"}),
    "hi": frozenset({"Devanagari"}),
    "th": frozenset({"Thai"}),
}

_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x00C0, 0x024F, "Latin"),
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0750, 0x077F, "Arabic"),
    (0x08A0, 0x08FF, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x1100, 0x11FF, "Hangul"),
    (0x1E00, 0x1EFF, "Latin"),
    (0x1F00, 0x1FFF, "Greek"),
    (0x3005, 0x3007, "Han"),
    (0x3040, 0x30FF, "Kana"),
    (0x3130, 0x318F, "Hangul"),
    (0x31F0, 0x31FF, "Kana"),
    (0x3400, 0x4DBF, "Han"),
    (0x4E00, 0x9FFF, "Han"),
    (0xAC00, 0xD7AF, "Hangul"),
    (0xF900, 0xFAFF, "Han"),
    (0xFB50, 0xFDFF, "Arabic"),
    (0xFE70, 0xFEFF, "Arabic"),
    (0xFF66, 0xFF9D, "Kana"),
    (0x20000, 0x2FA1F, "Han"),
)
_CJK_SPLIT = frozenset({"Han", "Kana"})  # one character = one word


@functools.lru_cache(maxsize=65536)
def char_script(ch: str) -> str:
    """The Unicode script of one letter (the few scripts we need; "Other" for the rest)."""
    o = ord(ch)
    if o < 0x80:
        return "Latin" if ch.isalpha() else "Other"
    for lo, hi, name in _RANGES:
        if lo <= o <= hi:
            return name
    return "Other"


_SPECIAL = re.compile(r"[$\\]")
_COMMAND = re.compile(r"\\(?:[A-Za-z]+|.)", re.S)
_ENV = re.compile(r"\\begin\{([^{}\n]{1,40})\}")
_LETTERS = re.compile(r"[^\W\d_]+")
_SENTENCE_END = re.compile(r"[.!?;:\n。！？；：]+")


def strip_latex(text: str) -> str:
    """Remove LaTeX math and commands (linear time: a delimiter without a closer is dropped, and once a closer
    is known to be absent it is never searched for again)."""
    out: list[str] = []
    i, n = 0, len(text)
    missing: set[str] = set()
    while i < n:
        m = _SPECIAL.search(text, i)
        if m is None:
            out.append(text[i:])
            break
        k = m.start()
        out.append(text[i:k])
        if text.startswith("$$", k):
            start, close = k + 2, "$$"
        elif text[k] == "$":
            start, close = k + 1, "$"
        elif text.startswith("\\[", k):
            start, close = k + 2, "\\]"
        elif text.startswith("\\(", k):
            start, close = k + 2, "\\)"
        else:
            env = _ENV.match(text, k)
            if env is not None:
                start, close = env.end(), "\\end{" + env.group(1) + "}"
            else:
                cm = _COMMAND.match(text, k)
                i = cm.end() if cm else k + 1
                out.append(" ")
                continue
        out.append(" ")
        if close in missing:
            i = start
            continue
        e = text.find(close, start)
        if e < 0:
            missing.add(close)
            i = start
            continue
        i = e + len(close)
    return "".join(out)


def words(text: str) -> list[tuple[str, str]]:
    """(word, script) pairs of a LaTeX-free text; CJK characters are one word each; one-letter words dropped."""
    out: list[tuple[str, str]] = []
    for m in _LETTERS.finditer(text):
        tok = m.group()
        if tok.isascii():
            if len(tok) > 1:
                out.append((tok, "Latin"))
            continue
        run, run_script = [], None
        for ch in tok:
            s = char_script(ch)
            if s in _CJK_SPLIT:
                if run and len(run) > 1:
                    out.append(("".join(run), run_script))
                run, run_script = [], None
                out.append((ch, s))
                continue
            if s != run_script and run:
                if len(run) > 1:
                    out.append(("".join(run), run_script))
                run = []
            run.append(ch)
            run_script = s
        if run and len(run) > 1:
            out.append(("".join(run), run_script))
    return out


@functools.lru_cache(maxsize=16)
def _detector(codes: frozenset[str]) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in sorted(codes)]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def _detect(codes: frozenset[str], text: str) -> str | None:
    lang = _detector(codes).detect_language_of(text)
    return None if lang is None else lang.iso_code_639_1.name.lower()


def chain_of_thought(text: str) -> str:
    """The reasoning of a completion: inside `<think>…</think>`, else the whole text (minus a stray `<think>`)."""
    if THINK_CLOSE in text:
        return extract_think(text) or ""
    return text.replace(THINK_OPEN, " ")


def target_share(
    text: str,
    target: str,
    languages: Sequence[str],
    *,
    min_chunk_words: int = 5,
    max_chunks: int = 200,
    max_chars: int = 100_000,
) -> float | None:
    """Share of the words of `text` (already the CoT) in language `target`, among candidate `languages`."""
    if len(text) > max_chars:
        half = max_chars // 2
        text = text[:half] + "\n" + text[-half:]
    cands = set(languages) | {target}
    target_scripts = LANGUAGE_SCRIPTS[target]
    total = 0
    hits = 0
    # sentences -> per script, the ambiguous words waiting for detection
    ambiguous: dict[str, list[list[str]]] = {}
    for sentence in _SENTENCE_END.split(strip_latex(text)):
        ws = words(sentence)
        if not ws:
            continue
        pending: dict[str, list[str]] = {}
        for w, script in ws:
            total += 1
            if script not in target_scripts:
                continue
            users = {c for c in cands if script in LANGUAGE_SCRIPTS[c]}
            if users == {target}:
                hits += 1
            else:
                pending.setdefault(script, []).append(w)
        for script, ws_ in pending.items():
            ambiguous.setdefault(script, []).append(ws_)
    if total == 0:
        return None
    for script, sentences in ambiguous.items():
        codes = frozenset(c for c in cands if script in LANGUAGE_SCRIPTS[c])
        n_words = sum(len(s) for s in sentences)
        size = max(min_chunk_words, math.ceil(n_words / max_chunks))
        chunks: list[list[str]] = []
        cur: list[str] = []
        for s in sentences:
            cur.extend(s)
            if len(cur) >= size:
                chunks.append(cur)
                cur = []
        if cur:
            if chunks and len(cur) < min_chunk_words:
                chunks[-1].extend(cur)
            else:
                chunks.append(cur)
        for chunk in chunks:
            if len(chunk) < min_chunk_words:  # too few words to tell languages of one script apart
                total -= len(chunk)
            elif _detect(codes, " ".join(chunk)) == target:
                hits += len(chunk)
    return hits / total if total > 0 else None


@dataclass
class LanguageParams:
    """Params of `language_consistency`."""

    language: str = field(
        default="en", metadata={"help": "Target language of the chain of thought (ISO 639-1)."}
    )
    languages: list[str] = field(
        default_factory=lambda: ["en", "zh", "fr", "de", "es", "ru"],
        metadata={"help": "Candidate languages the detector chooses among (the target is always added)."},
    )
    language_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Dataset column with a per-row target language (e.g. the prompt's); overrides language."
        },
    )
    min_chunk_words: int = field(
        default=5,
        metadata={"help": "Words of a shared script per detector call (sentences are merged up to it)."},
    )
    max_chars: int = field(
        default=100_000, metadata={"help": "Longer CoTs are judged on their head and tail."}
    )

    def __post_init__(self) -> None:
        for code in [self.language, *self.languages]:
            if code not in LANGUAGE_SCRIPTS:
                raise ValueError(
                    f"language {code!r} is not supported: use one of {', '.join(sorted(LANGUAGE_SCRIPTS))}"
                )
        if self.min_chunk_words < 1:
            raise ValueError(f"min_chunk_words must be >= 1, got {self.min_chunk_words}")
        if self.max_chars < 100:
            raise ValueError(f"max_chars must be >= 100, got {self.max_chars}")


def build_language_consistency(p: LanguageParams):
    def language_consistency(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        per_row = columns.get(p.language_column) if p.language_column else None
        out: list[float | None] = []
        for i, c in enumerate(completions):
            target = p.language
            if per_row is not None and per_row[i] in LANGUAGE_SCRIPTS:
                target = per_row[i]
            cot = chain_of_thought(completion_text(c))
            out.append(
                target_share(
                    cot, target, p.languages, min_chunk_words=p.min_chunk_words, max_chars=p.max_chars
                )
            )
        return out

    return language_consistency
