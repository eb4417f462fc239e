"""The one resumable, keyed JSONL log: a record per finished item, flushed and fsync'd before the next.

Each record holds `group` and `index` (which item) and `key` (a hash of everything the item depends on: model,
prompt, sampling protocol). A resumed run reads the log, drops a torn last line, and regenerates only the items
without a record; a record whose key differs was made under another protocol and is refused, so a resume never
mixes two protocols. `r1 eval` (samples.jsonl, one group per benchmark), `r1 distill` (traces.jsonl, one record per
prompt) and `r1 reject-sample` (shards.jsonl, one record per shard of prompts) use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from r1cli.console import log
from r1cli.errors import UsageError


class KeyedLog:
    def __init__(self, path: Path, *, group_field: str = "group"):
        self.path = path
        self.group_field = group_field  # eval's records name their benchmark `benchmark`
        self.records: dict[tuple[str, int], dict] = {}
        if path.exists():
            self._load()
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def _load(self) -> None:
        data = self.path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            self.records[(rec[self.group_field], int(rec["index"]))] = rec
            good += len(line)
        if good < len(data):
            log(f"[yellow]resume[/]: dropping a torn last record ({len(data) - good} bytes) from {self.path.name}")
            with open(self.path, "r+b") as f:
                f.truncate(good)

    def todo(self, group: str, keys: list[str], what: str,
             why: str = "another model, prompt or sampling protocol") -> list[int]:
        """Indices of `group` without a record; a record made under another key (protocol) is a usage error
        ("... holds {what} {i} made with {why}")."""
        out = []
        for i, key in enumerate(keys):
            old = self.records.get((group, i))
            if old is None:
                out.append(i)
            elif old.get("key") != key:
                raise UsageError(
                    f"--resume: {self.path.name} holds {what} {i} made with {why}",
                    hint="resume with the same settings, or use a new --output (or --overwrite)",
                )
        return out

    def get(self, group: str, index: int) -> dict[str, Any] | None:
        return self.records.get((group, index))

    def write(self, rec: dict) -> None:
        self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.records[(rec[self.group_field], int(rec["index"]))] = rec

    def close(self) -> None:
        self.f.close()
