"""Run many `r1` commands in one fresh interpreter, each with its own file-level stdout and stderr.

    python tests/reliability/_driver.py SPEC.json RESULTS.json

This is how the reliability suite reads the whole stderr of ~100 bad inputs without paying the torch /
transformers / TRL imports ~100 times: the interpreter starts bare (nothing imported, the network fenced off by
`tests/netguard.py`), and whatever a fresh `r1` process would print once (an import-time warning, a library's log
record, a hub request) lands in the capture of the first case that triggers it, and fails that case. Captures
are at the file-descriptor level, so writes from C/Rust code and from handlers bound to the original streams
are caught too.

SPEC: {"roots": [folders whose files must stay untouched], "cases": [{"id": ..., "argv": [...]}]}.
RESULTS: {id: {code, stdout, stderr, changed, net, seconds}}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # tests/reliability/ (conftest: tree_hash), tests/ (netguard)
import netguard  # noqa: E402
from conftest import tree_hash  # noqa: E402


def run_case(argv: list[str]) -> tuple[int, str, str]:
    from r1cli.cli import main

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        fo.seek(0)
        fe.seek(0)
        return code, fo.read().decode("utf-8", "replace"), fe.read().decode("utf-8", "replace")


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    attempts: list[str] = []
    netguard.install(None, attempts)
    results = {}
    for case in spec["cases"]:
        os.environ.pop("R1CLI_DEBUG", None)
        before = tree_hash(*spec["roots"])
        n = len(attempts)
        t0 = time.monotonic()
        code, out, err = run_case(case["argv"])
        after = tree_hash(*spec["roots"])
        results[case["id"]] = {
            "code": code,
            "stdout": out,
            "stderr": err,
            "changed": sorted(k for k in before if after.get(k) != before[k]),
            "net": attempts[n:],
            "seconds": round(time.monotonic() - t0, 2),
        }
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
