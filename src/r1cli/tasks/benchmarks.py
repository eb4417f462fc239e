"""Evaluation sets: built-in task test splits, MATH-500, GSM8K, AIME 2024, and any local or hub dataset.

`load_benchmark(spec, columns=..., limit=...)` resolves `spec` in this order:

1. a built-in task name (`arith`, `countdown`, `linear`; `arith:validation` for the validation split): its test split, `limit` rows
   (default 1000), generated here; graded by the task's own verifier;
2. a known benchmark name (`math500`, `gsm8k`, `aime24`, with a few aliases): the real file under the shared data
   folder when present (`$R1CLI_SHARED_DATA`, else `../shared/data` beside the repository checkout, else
   `./shared/data`/`../shared/data` from the working directory), otherwise its hub id
   (`HuggingFaceH4/MATH-500`, `openai/gsm8k` config `main`, `HuggingFaceH4/aime_2024`) with the same mapping;
3. a local file (`.jsonl`, `.json`, `.parquet`, `.csv`) or dataset folder (`save_to_disk`, or an `r1 data` run);
   rows whose `task` column names one built-in task (what `r1 data` writes) are graded like that task;
4. a hub id `org/name` (optionally `org/name:config`), split `test` when it has one.

Every row is normalised to `prompt` (the question, no template), `answer` (the gold final answer, a string) and,
when the source has one, `solution` (a worked reference solution whose final answer is in `\\boxed{}`), plus the
source's own fields. GSM8K's solutions end with `#### N`; that line becomes `The final answer is \\boxed{N}.` and
`answer` is N without thousands separators (the hub's `answer` column holds the whole solution).
A column mapping (`columns: {prompt: question, answer: final}`) names the source columns for custom data;
without one, common names are tried (prompt: prompt/problem/question/input; answer: answer/final_answer/target).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from r1cli.errors import ConfigError, InputArtifactError

DEFAULT_TASK_N = 1000


@dataclass(frozen=True)
class KnownBenchmark:
    """A benchmark r1cli knows by name."""

    name: str
    file: str  # file name under the shared data folder
    hub: str
    hub_config: str | None
    hub_split: str
    columns: dict[str, str]
    k: int  # samples per problem in R1's protocol


KNOWN: dict[str, KnownBenchmark] = {
    "math500": KnownBenchmark(
        "math500", "math500.jsonl", "HuggingFaceH4/MATH-500", None, "test",
        {"prompt": "problem", "answer": "answer", "solution": "solution"}, 4,
    ),
    "gsm8k": KnownBenchmark(
        "gsm8k", "gsm8k_test.jsonl", "openai/gsm8k", "main", "test",
        {"prompt": "question", "answer": "answer", "solution": "solution"}, 4,
    ),
    "aime24": KnownBenchmark(
        "aime24", "aime24.jsonl", "HuggingFaceH4/aime_2024", None, "train",
        {"prompt": "problem", "answer": "answer", "solution": "solution"}, 64,
    ),
}
ALIASES = {
    "math-500": "math500", "math_500": "math500", "huggingfaceh4/math-500": "math500",
    "gsm8k-test": "gsm8k", "openai/gsm8k": "gsm8k",
    "aime2024": "aime24", "aime_2024": "aime24", "aime-2024": "aime24", "huggingfaceh4/aime_2024": "aime24",
}
PROMPT_NAMES = ("prompt", "problem", "question", "input", "query")
ANSWER_NAMES = ("answer", "final_answer", "target", "label", "gold")
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


@dataclass
class Benchmark:
    """A loaded evaluation set."""

    name: str = field(metadata={"help": "Short name used in results (e.g. math500, arith, or the file stem)."})
    rows: list[dict[str, Any]] = field(metadata={"help": "Normalised rows: prompt, answer, optional solution, ..."})
    source: str = field(metadata={"help": "Where the rows came from (file path, hub id or task)."})
    kind: Literal["task", "math"] = field(metadata={"help": "task: graded by the task's verifier; math: math-verify."})
    default_k: int = field(default=4, metadata={"help": "Samples per problem in R1's protocol for this set."})
    task: Any = field(default=None, repr=False, metadata={"help": "The built-in Task object (kind task)."})

    @property
    def has_solutions(self) -> bool:
        return bool(self.rows) and all(r.get("solution") for r in self.rows)


def shared_data_dir() -> Path | None:
    """The shared benchmark folder, or None when there is none (see the module docstring for the order)."""
    env = os.environ.get("R1CLI_SHARED_DATA")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    repo = Path(__file__).resolve().parents[3]
    for p in (repo.parent / "shared" / "data", Path.cwd() / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if p.is_dir():
            return p
    return None


def known_name(spec: str) -> str | None:
    s = spec.strip().lower()
    s = ALIASES.get(s, s)
    return s if s in KNOWN else None


def load_benchmark(
    spec: str,
    *,
    columns: dict[str, str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    task_params: dict[str, Any] | None = None,
    split: str | None = None,
) -> Benchmark:
    """Load and normalise the benchmark `spec` (see the module docstring). `limit` keeps the first N rows."""
    from r1cli.tasks import available_tasks, get_task

    spec = str(spec).strip()
    if not spec:
        raise ConfigError("benchmark name is empty", hint="e.g. --benchmark arith or --benchmark math500")
    name, _, task_split = spec.partition(":")
    if name in available_tasks() and task_split in ("", "test", "validation"):
        # `arith` is the test split (what results report); `arith:validation` the one tuning reads
        task_split = task_split or "test"
        task = get_task(name, **(task_params or {}))
        rows = task.generate(task_split, limit or DEFAULT_TASK_N, seed=seed)
        label = name if task_split == "test" else f"{name}-validation"
        return Benchmark(label, rows, f"task:{name}:{task_split}:seed{seed}", "task", 4, task)
    name = known_name(spec)
    if name is not None:
        kb = KNOWN[name]
        mapping = {**kb.columns, **(columns or {})}
        data = shared_data_dir()
        if data is not None and (data / kb.file).is_file():
            raw = read_rows(data / kb.file)
            source = str(data / kb.file)
        else:
            raw = _load_hub(kb.hub, kb.hub_config, split or kb.hub_split)
            source = kb.hub + (f":{kb.hub_config}" if kb.hub_config else "")
        rows = normalise(raw, mapping, what=name)
        return Benchmark(name, rows[:limit] if limit else rows, source, "math", kb.k)
    p = Path(spec).expanduser()
    if p.exists():
        if p.is_dir():
            raw = _load_folder(p)
        elif p.suffix.lower() in FILE_SUFFIXES:
            raw = read_rows(p)
        else:
            raise InputArtifactError(
                f"benchmark file {spec!r} is not JSONL/JSON/Parquet/CSV", hint="convert it, or pass a hub id"
            )
        rows = normalise(raw, columns or {}, what=spec)
        return _with_task(Benchmark(_stem(p), rows[:limit] if limit else rows, str(p), "math", 4), task_params)
    hub, _, config = spec.partition(":")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", hub):
        raw = _load_hub(hub, config or None, split)
        rows = normalise(raw, columns or {}, what=spec)
        return Benchmark(hub.split("/")[-1].lower(), rows[:limit] if limit else rows, spec, "math", 4)
    raise ConfigError(
        f"unknown benchmark {spec!r}",
        hint=f"use a built-in task ({', '.join(available_tasks())}), {', '.join(KNOWN)}, a JSONL/Parquet file or a "
        "hub id org/name",
    )


def _with_task(b: Benchmark, task_params: dict[str, Any] | None) -> Benchmark:
    """Rows written by `r1 data` (a `task` column naming one built-in task) are graded by that task."""
    from r1cli.tasks import available_tasks, get_task

    names = {r.get("task") for r in b.rows}
    if len(names) == 1 and (name := names.pop()) in available_tasks():
        b.kind, b.task = "task", get_task(name, **(task_params or {}))
    return b


def _stem(p: Path) -> str:
    return p.name if p.is_dir() else p.stem


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL/JSON/Parquet/CSV file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        if suffix == ".json":
            obj = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(obj, dict):  # {"data": [...]} or column-oriented
                obj = obj.get("data", obj.get("rows", obj))
                if isinstance(obj, dict):
                    keys = list(obj)
                    obj = [dict(zip(keys, vals, strict=True)) for vals in zip(*obj.values(), strict=True)]
            if not isinstance(obj, list):
                raise ValueError("expected a list of objects")
            return obj
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if suffix == ".csv":
            import csv

            with open(path, encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f))
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise InputArtifactError(f"cannot read benchmark file {str(path)!r}: {e}") from None
    raise InputArtifactError(f"benchmark file {str(path)!r}: unsupported suffix {suffix!r}")


def _load_folder(p: Path) -> list[dict[str, Any]]:
    from r1cli.runs import resolve_input

    ref = resolve_input(str(p), "dataset", name="benchmark", allow_hub=False)
    import datasets

    ds = datasets.load_from_disk(str(ref.path))
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["test"] if "test" in ds else ds[next(iter(ds))]
    return ds.to_list()


def _load_hub(hub: str, config: str | None, split: str | None) -> list[dict[str, Any]]:
    import datasets

    try:
        if split is None:
            dd = datasets.load_dataset(hub, config)
            split = "test" if "test" in dd else next(iter(dd))
            ds = dd[split]
        else:
            ds = datasets.load_dataset(hub, config, split=split)
    except Exception as e:  # offline, unknown id, gated, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputArtifactError(
            f"cannot load benchmark {hub!r} from the hub: {msg}",
            hint="check the id and your connection, or pass a local JSONL/Parquet file "
            "(the real MATH-500/GSM8K/AIME files are read from $R1CLI_SHARED_DATA when set)",
        ) from None
    return ds.to_list()


_GSM8K_FINAL = re.compile(r"^####\s*(.+?)\s*$", re.MULTILINE)


def gsm8k_split(solution: str) -> tuple[str, str] | None:
    """(solution with its `#### N` line turned into `\\boxed{N}`, N without commas), or None without `####`."""
    found = list(_GSM8K_FINAL.finditer(solution))
    if not found:
        return None
    m = found[-1]
    final = m.group(1).replace(",", "").strip()
    body = solution[: m.start()].rstrip()
    return f"{body}\nThe final answer is $\\boxed{{{final}}}$.", final


def _pick(row: dict[str, Any], mapping: dict[str, str], key: str, names: tuple[str, ...]) -> str | None:
    if key in mapping:
        return mapping[key]
    return next((n for n in names if n in row), None)


def normalise(raw: list[dict[str, Any]], mapping: dict[str, str], what: str) -> list[dict[str, Any]]:
    """Rows with `prompt`, `answer` (str) and optional `solution`, plus the source fields."""
    unknown = set(mapping) - {"prompt", "answer", "solution"}
    if unknown:
        raise ConfigError(
            f"columns: unknown key(s) {', '.join(sorted(unknown))}",
            hint="the mapping takes prompt, answer and solution, e.g. {prompt: question, answer: final}",
        )
    if not raw:
        raise InputArtifactError(f"benchmark {what!r} has no rows")
    first = raw[0]
    pcol = _pick(first, mapping, "prompt", PROMPT_NAMES)
    acol = _pick(first, mapping, "answer", ANSWER_NAMES)
    scol = _pick(first, mapping, "solution", ("solution",))
    missing = [f"{k} ({c!r})" if c else k for k, c in (("prompt", pcol), ("answer", acol)) if not c or c not in first]
    if missing:
        raise InputArtifactError(
            f"benchmark {what!r}: no column for {', '.join(missing)} (has: {', '.join(sorted(first))})",
            hint="map the columns, e.g. --set columns='{prompt: question, answer: final}'",
        )
    out = []
    for i, r in enumerate(raw):
        row = dict(r)
        prompt, answer = r.get(pcol), r.get(acol)
        if prompt is None or answer is None:
            raise InputArtifactError(f"benchmark {what!r}: row {i} has no {pcol if prompt is None else acol}")
        answer = str(answer).strip()
        solution = r.get(scol) if scol and scol in r else None
        gs = gsm8k_split(answer) if "####" in answer else None
        if gs is not None:  # hub GSM8K: the answer column is the whole solution
            solution, answer = gs
        elif isinstance(solution, str) and "####" in solution:
            gs = gsm8k_split(solution)
            if gs is not None:
                solution = gs[0]
        row["prompt"], row["answer"] = str(prompt), answer
        if solution is not None:
            row["solution"] = str(solution)
        out.append(row)
    return out
