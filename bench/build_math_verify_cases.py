"""Rebuild tests/data/math_verify_cases.jsonl from math-verify's own test suite.

Reads the `(gold, pred, expected)` parametrizations of the test modules shipped in math-verify's source
distribution (the same tests as github.com/huggingface/Math-Verify `tests/`, at the installed version) and writes
one JSON line per case: gold, pred, expected (0/1), source (repo, path and pytest id), and the non-default options
of that test's comparison (`match_types`, `precision`, `strict`, `allow_set_relation_comp`) when it has any.

Usage:
    pip download math-verify==0.9.0 --no-binary :all: --no-deps -d /tmp/mv && tar xzf /tmp/mv/math_verify-0.9.0.tar.gz -C /tmp/mv
    python bench/build_math_verify_cases.py /tmp/mv/math_verify-0.9.0 > tests/data/math_verify_cases.jsonl
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from pathlib import Path

REPO = "huggingface/Math-Verify@0.9.0"
_MODULES = (
    "test_all",
    "test_boxed",
    "test_numina_cases",
    "test_open_thoughts",
    "test_strict",
    "test_yujianll",
)
_OPTIONS = ("precision", "strict", "allow_set_relation_comp", "match_types")
# compare_strings' defaults in tests/test_all.py
_DEFAULTS = {
    "precision": 6,
    "strict": True,
    "allow_set_relation_comp": False,
    "match_types": ["latex", "expr"],
}


def _match_types(fn) -> list[str] | None:
    """The `match_types=[...]` a test passes to `compare_strings` (None: its default, latex + expr)."""
    m = re.search(r"match_types=(\[[^\]]*\])", inspect.getsource(fn))
    return json.loads(m.group(1).replace("'", '"')) if m else None


def cases(root: Path) -> list[dict]:
    sys.path.insert(0, str(root))
    out: list[dict] = []
    for name in _MODULES:
        mod = importlib.import_module(f"tests.{name}")
        tests = [(f, fn) for f, fn in vars(mod).items() if f.startswith("test_") and inspect.isfunction(fn)]
        for fname, fn in sorted(tests, key=lambda t: t[1].__code__.co_firstlineno):
            for mark in getattr(fn, "pytestmark", []):
                if mark.name != "parametrize":
                    continue
                argnames = [
                    a.strip()
                    for a in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])
                ]
                if "gold" not in argnames or "pred" not in argnames:
                    continue
                mt = _match_types(fn)
                for k, values in enumerate(mark.args[1]):
                    row = dict(zip(argnames, values, strict=True))
                    expected = row.get("expected", row.get("result"))
                    case = {
                        "gold": row["gold"],
                        "pred": row["pred"],
                        "expected": int(expected),
                        "source": f"{REPO} tests/{name}.py::{fname}[{k}]",
                    }
                    opts = {o: row[o] for o in _OPTIONS if o in row and row[o] != _DEFAULTS[o]}
                    if mt is not None and mt != _DEFAULTS["match_types"] and name != "test_yujianll":
                        opts["match_types"] = mt  # test_yujianll calls parse/verify with their defaults
                    if opts:
                        case["options"] = opts
                    out.append(case)
    return out


def main() -> None:
    root = Path(sys.argv[1])
    for c in cases(root):
        print(json.dumps(c, ensure_ascii=False))


if __name__ == "__main__":
    main()
