"""Decontamination: drop training prompts that share a word 8-gram with an evaluation set.

The evaluation sets (default: MATH-500, GSM8K test, AIME 2024 and the built-in tasks' test splits) are loaded
with `r1cli.tasks.benchmarks.load_benchmark`, so they come from the shared data folder when it is present (the hub
otherwise; a set that cannot be loaded is skipped with a warning and listed in `skipped`). Each eval text is
normalised — Unicode NFKC, lower case, words = runs of letters and digits (punctuation and LaTeX markup dropped) —
and every word n-gram (n = 8) goes into one hash set (64-bit blake2b of the n-gram). A training prompt is
contaminated when any of its n-grams is in the set; a text shorter than n words is one "n-gram" of its own, so it
matches only an identical short text.

Built-in task test splits are matched on the whole normalised prompt instead: their prompts come from a tiny
grammar ("Apply the steps in order, starting from 0: a: +7 ..."), so 8-grams recur between disjoint problems
(every arith train prompt shares one with some test prompt: docs/design-notes.md). Exact match (lower case, whitespace collapsed, punctuation and signs kept: `5x - 36` is not `5x + 36`) is the
honest test there. The task split is the problem set `r1 eval` uses by default (seed 0, the first 1000 test
problems at default difficulty).

The index is cached under `$R1CLI_CACHE/decontam/` (default `~/.cache/r1cli`) by a sha256 of the normalised eval
texts, n and the normalisation version: a changed file or task generator gives a new key, never a stale index.

Departure: the paper does not describe its decontamination; 8-gram overlap follows open-r1's practice.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from r1cli.paths import cache_root

NORMALISATION_VERSION = 2
DEFAULT_EVAL_SETS: tuple[str, ...] = ("math500", "gsm8k", "aime24", "arith", "countdown", "linear")
_WORD = re.compile(r"[^\W_]+")


def normalise(text: str) -> list[str]:
    """Lower-cased NFKC words (runs of letters and digits) of `text`."""
    return _WORD.findall(unicodedata.normalize("NFKC", str(text)).lower())


def _h(words: Sequence[str]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).digest(), "big")


def ngram_hashes(text: str, n: int = 8) -> set[int]:
    """Hashes of the word n-grams of `text` (the whole text as one when it has fewer than n words)."""
    ws = normalise(text)
    if not ws:
        return set()
    if len(ws) < n:
        return {_h(ws)}
    return {_h(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def exact_hash(text: str) -> int | None:
    """Hash of the whole text, lower-cased with whitespace collapsed (punctuation and signs kept)."""
    ws = unicodedata.normalize("NFKC", str(text)).lower().split()
    return _h(["\x00exact", *ws]) if ws else None


class Decontaminator:
    """An n-gram index of evaluation sets. `contaminated(text)` / `match(text)` test one training prompt.

    `eval_sets`: names or paths `load_benchmark` accepts (built-in task names are matched exactly, the others by
    n-grams). `texts` adds extra eval texts (name -> texts) without loading anything (tests, custom sets).
    """

    def __init__(
        self,
        eval_sets: Iterable[str] = DEFAULT_EVAL_SETS,
        *,
        n: int = 8,
        texts: dict[str, Sequence[str]] | None = None,
        cache: bool = True,
        task_n: int = 1000,
    ):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.sources: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}
        groups: list[tuple[str, str, list[str]]] = []  # (name, mode, texts)
        for spec in dict.fromkeys(eval_sets):
            got = _load(spec, task_n)
            if isinstance(got, str):
                self.skipped[spec] = got
                from r1cli.console import log

                log(f"[yellow]decontam[/]: eval set {spec!r} skipped ({got})")
                continue
            name, mode, source, items = got
            groups.append((name, mode, items))
            self.sources[name] = {"source": source, "rows": len(items), "match": mode}
        for name, items in (texts or {}).items():
            groups.append((name, "ngram", list(items)))
            self.sources[name] = {"source": "given", "rows": len(items), "match": "ngram"}
        self.names = [g[0] for g in groups]
        key = self._key(groups)
        self.index: dict[int, int] = {}
        self.exact: dict[int, int] = {}
        path = cache_root() / "decontam" / f"{key}.npz"
        if cache and path.is_file():
            try:
                self._load_cache(path)
                return
            except Exception:  # a torn or foreign cache file: rebuild it
                self.index, self.exact = {}, {}
        for gi, (_name, mode, items) in enumerate(groups):
            for t in items:
                if mode == "exact":
                    h = exact_hash(t)
                    if h is not None:
                        self.exact.setdefault(h, gi)
                else:
                    for h in ngram_hashes(t, n):
                        self.index.setdefault(h, gi)
        if cache:
            self._save_cache(path)

    def _key(self, groups: list[tuple[str, str, list[str]]]) -> str:
        d = hashlib.sha256(f"v{NORMALISATION_VERSION}:n{self.n}".encode())
        for name, mode, items in groups:
            d.update(f"\x01{name}\x02{mode}\x02{len(items)}".encode())
            for t in items:
                d.update(b"\x03" + str(t).encode("utf-8"))
        return d.hexdigest()[:24]

    def _save_cache(self, path: Path) -> None:
        import numpy as np

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f,
                index_h=np.fromiter(self.index.keys(), dtype=np.uint64, count=len(self.index)),
                index_g=np.fromiter(self.index.values(), dtype=np.int32, count=len(self.index)),
                exact_h=np.fromiter(self.exact.keys(), dtype=np.uint64, count=len(self.exact)),
                exact_g=np.fromiter(self.exact.values(), dtype=np.int32, count=len(self.exact)),
            )
        os.replace(tmp, path)

    def _load_cache(self, path: Path) -> None:
        import numpy as np

        with np.load(path) as z:
            self.index = dict(zip(z["index_h"].tolist(), z["index_g"].tolist(), strict=True))
            self.exact = dict(zip(z["exact_h"].tolist(), z["exact_g"].tolist(), strict=True))

    def match(self, text: str) -> str | None:
        """The name of an eval set `text` overlaps (exact prompt or a shared n-gram), or None."""
        h = exact_hash(text)
        if h is not None and h in self.exact:
            return self.names[self.exact[h]]
        for g in ngram_hashes(text, self.n):
            gi = self.index.get(g)
            if gi is not None:
                return self.names[gi]
        return None

    def contaminated(self, text: str) -> bool:
        """Whether `text` shares an n-gram with an eval set (or is a built-in task test prompt)."""
        return self.match(text) is not None

    def summary(self) -> dict[str, Any]:
        """For manifests: the eval sets used (source, rows, match mode), the skipped ones and n."""
        return {"n": self.n, "sources": self.sources, "skipped": self.skipped}


def _load(spec: str, task_n: int) -> tuple[str, str, str, list[str]] | str:
    """(name, mode, source, texts) of one eval set, or the reason it was skipped."""
    from r1cli.tasks.benchmarks import KNOWN, known_name, load_benchmark, shared_data_dir

    kn = known_name(spec)
    if kn is not None:
        data = shared_data_dir()
        if (data is None or not (data / KNOWN[kn].file).is_file()) and os.environ.get("HF_HUB_OFFLINE") == "1":
            return "not in the shared data folder and HF_HUB_OFFLINE=1"
    try:
        b = load_benchmark(spec, limit=task_n if _is_task(spec) else None, seed=0)
    except Exception as e:  # noqa: BLE001 - an unavailable eval set is reported, not fatal
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    mode = "exact" if b.kind == "task" else "ngram"
    return b.name, mode, b.source, [str(r["prompt"]) for r in b.rows]


def _is_task(spec: str) -> bool:
    from r1cli.tasks import available_tasks

    return spec in available_tasks()


def drop_contaminated(
    rows: Sequence[dict[str, Any]], prompt_key: str = "prompt", decontaminator: Decontaminator | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The rows whose `prompt_key` text overlaps no eval set, and how many were dropped."""
    d = decontaminator or Decontaminator()
    from r1cli.prompts import completion_text

    kept = [r for r in rows if not d.contaminated(completion_text(r[prompt_key]))]
    return kept, len(rows) - len(kept)


__all__ = ["DEFAULT_EVAL_SETS", "Decontaminator", "drop_contaminated", "ngram_hashes", "normalise"]
