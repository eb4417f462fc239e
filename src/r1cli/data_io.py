"""Loading a stage's input dataset: an r1cli run, a `save_to_disk` folder, a JSONL/Parquet/CSV file or a hub id,
with an optional column mapping `{our_name: their_name}` (e.g. `{prompt: question}`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r1cli.errors import InputArtifactError
from r1cli.runs import InputRef, resolve_input

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def load_dataset_input(
    spec: str, *, split: str = "train", name: str = "input", columns: dict[str, str] | None = None
) -> tuple[Any, InputRef]:
    """Return (datasets.Dataset, InputRef). Bad or empty inputs raise InputArtifactError (exit 3)."""
    import datasets

    ref = resolve_input(spec, "dataset", name=name)
    try:
        with quiet_datasets():
            ds = _load(ref, spec, split, name, datasets)
    except InputArtifactError:
        raise
    except Exception as e:
        raise InputArtifactError(f"{name} {spec!r} could not be loaded as a dataset: {_reason(e)}") from None
    if len(ds) == 0:
        raise InputArtifactError(f"{name} {spec!r} is empty", hint="pass a dataset with at least one row")
    return map_columns(ds, columns or {}, what=f"{name} {spec!r}"), ref


def quiet_datasets() -> Any:
    """datasets' progress bars and error logs off stderr while a file loads (r1's error line carries the reason)."""
    from r1cli.thirdparty import quiet_hf_library

    return quiet_hf_library("datasets")


def save_dataset(ds: Any, folder: str | Path, **kwargs: Any) -> None:
    """`ds.save_to_disk(folder)` without datasets' "Saving the dataset" bars on stderr (r1's own line says it)."""
    with quiet_datasets():
        ds.save_to_disk(str(folder), **kwargs)


def _reason(e: BaseException) -> str:
    """The first line of an exception and of its cause (datasets wraps a JSON parse error in a generic one)."""
    parts = [(str(x).strip().splitlines() or [type(x).__name__])[0][:200] for x in (e, e.__cause__) if x is not None]
    return ": ".join(dict.fromkeys(parts))


def _load(ref: Any, spec: str, split: str, name: str, datasets: Any) -> Any:
    if ref.path is None:
        return datasets.load_dataset(ref.spec, split=split)
    if ref.path.is_file():
        builder = _FILE_BUILDERS.get(ref.path.suffix)
        if builder is None:
            raise InputArtifactError(f"{name} {spec!r}: unsupported file type {ref.path.suffix!r}")
        return datasets.load_dataset(builder, data_files=str(ref.path), split="train")
    if _saved_without_rows(ref.path):  # datasets cannot reload a 0-row save_to_disk folder (IndexError)
        raise InputArtifactError(f"{name} {spec!r} is empty", hint="pass a dataset with at least one row")
    ds = datasets.load_from_disk(str(ref.path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise InputArtifactError(f"{name} {spec!r} has splits {list(ds)}, not {split!r}")
        ds = ds[split]
    return ds


def _saved_without_rows(folder: Any) -> bool:
    """A `save_to_disk` folder of a single dataset that holds no data files (what a 0-row Dataset writes)."""
    import json

    state = folder / "state.json"
    if not state.is_file():
        return False
    try:
        return json.loads(state.read_text(encoding="utf-8")).get("_data_files") == []
    except (OSError, ValueError, AttributeError):
        return False


def map_columns(ds: Any, columns: dict[str, str], what: str = "dataset") -> Any:
    """Rename source columns to r1cli's names: `columns = {target: source}`."""
    if not columns:
        return ds
    missing = [src for src in columns.values() if src not in ds.column_names]
    if missing:
        raise InputArtifactError(
            f"{what} lacks column(s) {', '.join(missing)} named in the column mapping "
            f"(has: {', '.join(ds.column_names)})",
            hint="fix `columns:` in the recipe, e.g. {prompt: question}",
        )
    renames = {src: dst for dst, src in columns.items() if src != dst}
    clash = [dst for src, dst in renames.items() if dst in ds.column_names and dst not in renames]
    if clash:
        ds = ds.remove_columns(clash)
    return ds.rename_columns(renames)


EMBEDDED_MODELS = ("tiny", "tiny-test", "tiny-mix")


def prompt_source(cfg: Any, stage: str) -> str:
    """A sampling stage's prompt source: `input`, else `task`, else the built-in `arith` task, which is a default
    only for the embedded tiny presets that were pretrained on it; a real model without a prompt source is a
    config error rather than a silent run on the toy task."""
    from r1cli.errors import ConfigError

    src = getattr(cfg, "input", None) or getattr(cfg, "task", None)
    if src:
        return str(src)
    model = str(getattr(cfg, "model", ""))
    if model in EMBEDDED_MODELS:
        return "arith"
    from r1cli.models import PRESETS, resolve_model

    if model not in PRESETS and resolve_input(model, "model", name="model").path is not None:
        # a missing model is reported as such first; an embedded base folder says which task it was pretrained on
        from r1cli.tinybase import build_info

        task = ((build_info(resolve_model(model)) or {}).get("preset_config") or {}).get("task")
        if task:
            return str(task)
    raise ConfigError(
        f"r1 {stage} has no prompts for model {cfg.model!r}: set input (or task)",
        hint="--input DATASET with prompt and answer columns (e.g. from `r1 data --from gsm8k`), or --set task=arith",
    )


def prompt_rows(
    source: str,
    *,
    run: Any,
    stage: str,
    task_n: int,
    dataset_n: int | None = None,
    seed: int = 0,
    columns: dict[str, str] | None = None,
    task_params: dict[str, Any] | None = None,
    require: tuple[str, ...] = ("prompt",),
    task: str | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The prompt rows of a sampling stage (rl, reject-sample, distill, align): `{prompt (the question), answer
    (None when blank or absent), task?, ...}`, and whether every row is a built-in task row (graded by its task).

    `source` is a built-in task name (`task_n` train problems generated with `seed`) or a dataset input
    (`load_dataset_input` forms, `columns` mapping; its first `dataset_n` rows, all when None; recorded as an input
    of `run`). `task` names the built-in task of dataset rows that lack a `task` column.
    """
    from r1cli.console import log
    from r1cli.errors import ConfigError
    from r1cli.tasks import available_tasks, get_task

    if source in available_tasks():
        rows = get_task(source, **(task_params or {})).generate("train", task_n, seed=seed)
        log(f"prompts: {len(rows)} generated `{source}` train problems")
        return rows, True
    if task_params:
        raise ConfigError(f"task_params applies to built-in tasks, and input {source!r} is not one",
                          hint=f"built-in tasks: {', '.join(available_tasks())}")
    ds, ref = load_dataset_input(source, columns=columns or None)
    run.add_input(ref)
    missing = [c for c in require if c not in ds.column_names]
    if missing:
        raise InputArtifactError(
            f"{stage} prompts need {'columns' if len(require) > 1 else 'a column'} {' and '.join(require)}; "
            f"{source!r} lacks {', '.join(missing)} "
            f"(has: {', '.join(ds.column_names)})",
            hint="map yours, e.g. columns: {prompt: question, answer: final}, or write them with `r1 data`",
        )
    if dataset_n:
        ds = ds.select(range(min(dataset_n, len(ds))))
    rows = ds.to_list()
    for i, r in enumerate(rows):
        if not isinstance(r["prompt"], str):
            raise InputArtifactError(
                f"row {i} of {source!r}: prompt must be text (the question), got {type(r['prompt']).__name__}",
                hint="map a text column to prompt",
            )
        a = r.get("answer")
        r["answer"] = None if a is None or str(a).strip() == "" else str(a)
        if task and not r.get("task"):
            r["task"] = task
    builtin = bool(rows) and all(r.get("task") in available_tasks() for r in rows)
    log(f"prompts: {len(rows)} rows of {source}")
    return rows, builtin
