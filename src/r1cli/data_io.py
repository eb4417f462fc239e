"""Loading a stage's input dataset: an r1cli run, a `save_to_disk` folder, a JSONL/Parquet/CSV file or a hub id,
with an optional column mapping `{our_name: their_name}` (e.g. `{prompt: question}`)."""

from __future__ import annotations

from typing import Any

from r1cli.artifacts import InputRef, resolve_input
from r1cli.errors import InputArtifactError

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def load_dataset_input(
    spec: str, *, split: str = "train", name: str = "input", columns: dict[str, str] | None = None
) -> tuple[Any, InputRef]:
    """Return (datasets.Dataset, InputRef). Bad or empty inputs raise InputArtifactError (exit 3)."""
    import datasets

    ref = resolve_input(spec, "dataset", name=name)
    try:
        if ref.path is None:
            ds = datasets.load_dataset(ref.spec, split=split)
        elif ref.path.is_file():
            builder = _FILE_BUILDERS.get(ref.path.suffix)
            if builder is None:
                raise InputArtifactError(f"{name} {spec!r}: unsupported file type {ref.path.suffix!r}")
            ds = datasets.load_dataset(builder, data_files=str(ref.path), split="train")
        else:
            if _saved_without_rows(ref.path):  # datasets cannot reload a 0-row save_to_disk folder (IndexError)
                raise InputArtifactError(f"{name} {spec!r} is empty", hint="pass a dataset with at least one row")
            ds = datasets.load_from_disk(str(ref.path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise InputArtifactError(f"{name} {spec!r} has splits {list(ds)}, not {split!r}")
                ds = ds[split]
    except InputArtifactError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputArtifactError(f"{name} {spec!r} could not be loaded as a dataset: {first}") from None
    if len(ds) == 0:
        raise InputArtifactError(f"{name} {spec!r} is empty", hint="pass a dataset with at least one row")
    return map_columns(ds, columns or {}, what=f"{name} {spec!r}"), ref


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
