"""Run folders, manifests, input checks, atomic writes and hashing.

A stage's output folder holds `data/` (a `datasets.save_to_disk` folder) or `model/` (a `save_pretrained`
folder or PEFT adapter), `config.yaml` (the resolved config, written first) and `manifest.json`, written last
and atomically (temp file + fsync + rename): a folder whose manifest is missing or not `complete` is never taken
as an input. Everything in it is loadable by plain Hugging Face code without r1cli.

Under a multi-process launch (`accelerate launch`, torchrun) every rank runs the same command: rank 0 alone
prepares the output folder (the not-empty / --overwrite / --resume checks) and writes config.yaml and the
manifest; the others wait for its verdict (one broadcast, which is also the barrier), raise the same error when it
failed, and get a private scratch folder as their `RunDir.path` (removed by `RunDir.close`), so whatever a stage
writes through `run.path` on them never lands in the output. Rank and world size come from the launcher's
environment (`r1cli.runs.ranks`), so a single process never imports torch here.

Manifest schema (version 1):
    schema_version, kind ("dataset" | "model" | "eval"), stage, r1cli_version, git_sha, created_at, status,
    config, inputs [{name, path, kind, content_hash}], outputs {relpath: sha256}, content_hash,
    data {rows, columns} (datasets), metrics {...}, timings {...},
    runtime {cpu_count, torch_threads, world_size, device, env, generation_memory_caps?} (what a result may depend
    on besides the seed and the config: float reductions differ with the thread count, so a rerun is bit-identical
    only under the same)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from r1cli import __version__
from r1cli.errors import ConfigError, InputArtifactError, R1Error, StageError, UsageError
from r1cli.runs.ranks import broadcast_from_main, is_main_process, process_rank, world_size

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.yaml"
Kind = Literal["dataset", "model", "eval"]
SUBDIR = {"dataset": "data", "model": "model", "eval": "."}


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def hash_tree(root: Path, skip: Iterable[str] = ()) -> dict[str, str]:
    """sha256 of every file under `root`, keyed by relative posix path (sorted)."""
    root = Path(root)
    skip = set(skip)
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            rel = p.relative_to(root).as_posix()
            if rel in skip:
                continue
            out[rel] = sha256_file(p)
    return out


def combine_hashes(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode())
        h.update(b"\0")
        h.update(files[k].encode())
        h.update(b"\n")
    return h.hexdigest()


def git_sha() -> str | None:
    try:
        root = Path(__file__).resolve().parents[3]  # src/r1cli/runs/folder.py -> the checkout
        r = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return r.stdout.strip() or None if r.returncode == 0 else None
    except Exception:
        return None


@dataclass
class InputRef:
    """A resolved input: an r1cli run folder, a plain local HF folder, or a hub id."""

    name: str
    spec: str
    path: Path | None  # the folder to load (run/<data|model> for r1cli runs); None for hub ids
    kind: str
    content_hash: str | None
    manifest: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec,
            "path": str(self.path) if self.path else None,
            "kind": self.kind,
            "content_hash": self.content_hash,
        }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _looks_like_hf_model(p: Path) -> bool:
    return (p / "config.json").is_file() or (p / "adapter_config.json").is_file()


def _looks_like_hf_dataset(p: Path) -> bool:
    return (p / "dataset_info.json").is_file() or (p / "state.json").is_file() or (p / "dataset_dict.json").is_file()


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not spec.startswith((".", "/", "~"))
        and not Path(spec).exists()
        and all(c.isalnum() or c in "-_." for c in spec.replace("/", ""))
    )


def resolve_input(spec: str | Path, expect: Kind, name: str = "input", allow_hub: bool = True) -> InputRef:
    """Resolve an input for a stage that expects a `dataset` or a `model`.

    - an r1cli run folder: its manifest must be complete and of the expected kind (else exit 3);
    - a plain local HF folder (`save_pretrained` / `save_to_disk` / adapter): accepted, its files hashed;
    - a hub id (`org/name`): accepted when `allow_hub`, loaded by the same code later.
    """
    s = str(spec)
    p = Path(s).expanduser()
    if p.exists():
        if not p.is_dir():
            if expect == "dataset" and p.suffix in (".jsonl", ".json", ".parquet", ".csv"):
                return InputRef(name, s, p, "dataset", sha256_file(p))
            raise InputArtifactError(f"{name} {s!r} is a file, not a {expect} folder")
        man = read_manifest(p)
        if (p / MANIFEST).exists() or (p / CONFIG).exists():
            # an r1cli run folder
            if man is None:
                raise InputArtifactError(
                    f"{name} {s!r} has no complete manifest.json (the run that wrote it did not finish)",
                    hint="rerun that stage with --resume, or point at a finished run",
                )
            if man.get("status") != "complete":
                raise InputArtifactError(
                    f"{name} {s!r} is a run with status {man.get('status')!r}, not 'complete'",
                    hint="rerun that stage with --resume, or point at a finished run",
                )
            if man.get("kind") != expect:
                raise InputArtifactError(
                    f"{name} {s!r} is a {man.get('kind')} artifact (from `r1 {man.get('stage')}`), but a {expect} is expected",
                    hint=f"pass the output of a stage that writes a {expect}",
                )
            sub = p / SUBDIR[expect]
            if not sub.exists():
                raise InputArtifactError(f"{name} {s!r}: its manifest is complete but {sub} is missing")
            return InputRef(name, s, sub, expect, man.get("content_hash"), man)
        if expect == "model" and _looks_like_hf_model(p):
            return InputRef(name, s, p, "model", combine_hashes(hash_tree(p)))
        if expect == "dataset" and _looks_like_hf_dataset(p):
            return InputRef(name, s, p, "dataset", combine_hashes(hash_tree(p)))
        if expect == "model" and _looks_like_hf_dataset(p) or expect == "dataset" and _looks_like_hf_model(p):
            other = "dataset" if expect == "model" else "model"
            raise InputArtifactError(f"{name} {s!r} is a {other} folder, but a {expect} is expected")
        raise InputArtifactError(
            f"{name} {s!r} is neither an r1cli run nor a Hugging Face {expect} folder",
            hint="an r1cli output has manifest.json; a HF model has config.json; a HF dataset has dataset_info.json",
        )
    if allow_hub and _looks_like_hub_id(s):
        return InputRef(name, s, None, expect, None)
    raise InputArtifactError(
        f"{name} {s!r} does not exist" + (" and is not a hub id (org/name)" if allow_hub else ""),
        hint="check the path, or run the stage that produces it first",
    )


_ERRORS: dict[str, type[R1Error]] = {c.__name__: c for c in (ConfigError, UsageError, InputArtifactError, StageError)}


class RunDir:
    """One stage's output folder; create with `RunDir.prepare(...)`, finish with `complete(...)`."""

    def __init__(self, path: Path, stage: str, kind: Kind):
        self.path = Path(path)
        self.stage = stage
        self.kind = kind
        self.started = time.time()
        self.timings: dict[str, float] = {}
        self.inputs: list[InputRef] = []
        self.resume = False  # set by prepare(): the stage continues an interrupted run
        self.output = self.path  # the real output folder (differs from `path` on ranks other than 0)
        self.is_main = True  # False on ranks other than 0: nothing is written to `output`
        self.fresh = False  # set by prepare(): this command created (or emptied) the folder

    @classmethod
    def prepare(cls, path: str | Path, stage: str, kind: Kind, *, overwrite: bool = False, resume: bool = False) -> RunDir:
        """Check and create the output folder (rank 0 only under a multi-process launch; see the module docstring).

        Raises UsageError (exit 2) when it is not empty without --overwrite/--resume, or holds another stage's run.
        """
        if world_size() <= 1:
            return cls._prepare(path, stage, kind, overwrite=overwrite, resume=resume)
        rd, verdict = None, None
        if is_main_process():
            try:
                rd = cls._prepare(path, stage, kind, overwrite=overwrite, resume=resume)
            except R1Error as e:
                verdict = (type(e).__name__, e.message, e.hint)
                broadcast_from_main(verdict)
                raise
            except Exception as e:
                verdict = ("StageError", f"rank 0 could not prepare {str(path)!r}: {type(e).__name__}: {e}", None)
                broadcast_from_main(verdict)
                raise
        verdict = broadcast_from_main(verdict)
        if rd is not None:
            return rd
        if verdict is not None:
            name, message, hint = verdict
            raise _ERRORS.get(name, StageError)(message, hint=hint)
        scratch = Path(tempfile.mkdtemp(prefix=f"r1cli-rank{process_rank()}-"))
        rd = cls(scratch, stage, kind)
        rd.resume = resume
        rd.output = Path(path).expanduser()
        rd.is_main = False
        return rd

    def close(self) -> None:
        """Remove the scratch folder of a rank other than 0 (no-op on rank 0)."""
        if not self.is_main:
            shutil.rmtree(self.path, ignore_errors=True)

    @classmethod
    def _prepare(cls, path: str | Path, stage: str, kind: Kind, *, overwrite: bool, resume: bool) -> RunDir:
        p = Path(path).expanduser()
        if p.exists() and not p.is_dir():
            raise UsageError(f"output {str(p)!r} exists and is not a folder")
        if p.exists() and any(p.iterdir()):
            if resume:
                man = read_manifest(p)
                if man is not None and man.get("stage") not in (None, stage):
                    raise UsageError(f"--resume: {str(p)!r} holds a `r1 {man.get('stage')}` run, not `r1 {stage}`")
            elif overwrite:
                man = read_manifest(p)
                if (p / MANIFEST).exists() or (p / CONFIG).exists() or man is not None:
                    shutil.rmtree(p)
                else:
                    raise UsageError(
                        f"--overwrite refuses to delete {str(p)!r}: it is not an r1cli run folder",
                        hint="pick an empty or new output folder",
                    )
            else:
                raise UsageError(
                    f"output {str(p)!r} is not empty",
                    hint="pass --overwrite to replace it, --resume to continue it, or choose another --output",
                )
        fresh = not p.exists() or not any(p.iterdir()) or overwrite
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create output {str(p)!r}: {e.strerror or e}",
                             hint="choose an --output under a folder you can write to") from None
        rd = cls(p, stage, kind)
        rd.resume = resume
        rd.fresh = fresh and not resume
        if resume:
            # a resumed run is not complete until it finishes again
            (p / MANIFEST).unlink(missing_ok=True)
        return rd

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def write_config(self, cfg: Any) -> None:
        from r1cli.config_loader import dump_yaml

        if not self.is_main:
            return
        atomic_write_text(self.path / CONFIG, dump_yaml(cfg))

    def add_input(self, ref: InputRef) -> None:
        self.inputs.append(ref)

    def timed(self, name: str):
        rd = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                rd.timings[name] = round(rd.timings.get(name, 0.0) + time.perf_counter() - self.t, 3)

        return _T()

    def complete(
        self,
        cfg: Any,
        *,
        metrics: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        status: str = "complete",
    ) -> dict[str, Any]:
        """Hash outputs and write manifest.json last, atomically. On ranks other than 0: nothing is hashed or
        written; the returned manifest has no outputs."""
        from r1cli.config_loader import to_plain

        sub = SUBDIR[self.kind]
        root = self.path / sub
        outputs = hash_tree(root, skip=(MANIFEST,)) if root.exists() and self.is_main else {}
        if sub != ".":
            outputs = {f"{sub}/{k}": v for k, v in outputs.items()}
        self.timings["total"] = round(time.time() - self.started, 3)
        man = {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "stage": self.stage,
            "r1cli_version": __version__,
            "git_sha": git_sha(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "status": status,
            "config": to_plain(cfg),
            "inputs": [i.record() for i in self.inputs],
            "outputs": outputs,
            "content_hash": combine_hashes(outputs),
            "data": data,
            "metrics": metrics or {},
            "timings": self.timings,
            "runtime": runtime_facts(),
        }
        if extra:
            man.update(extra)
        if not self.is_main:
            return man
        atomic_write_text(self.path / MANIFEST, json.dumps(man, indent=2, default=str) + "\n")
        return man


def runtime_facts() -> dict[str, Any]:
    """The hardware and threading a stage ran under (torch's only when the stage imported it: never imported here).

    Recorded, not fixed from the config: the torch thread count changes trained weights by float rounding
    (measured in docs/design-notes.md, "Reproducible by seed"), and pinning it would cost throughput on every
    machine. To reproduce a run bit for bit, run it with the same `OMP_NUM_THREADS` (and
    device). `generation_memory_caps` appears only when the sampling engine had to decode fewer rows than its
    fixed default because free memory was short (`r1cli.generation.default_batch_size`)."""
    import sys

    torch = sys.modules.get("torch")
    device = "cpu"
    if torch is not None and torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "world_size": world_size(),
        "device": device,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS") if k in os.environ},
    }
    gen = sys.modules.get("r1cli.generation")
    if gen is not None and gen.MEMORY_CAPS:
        facts["generation_memory_caps"] = [dict(e) for e in gen.MEMORY_CAPS]
    return facts


def dataset_summary(ds: Any) -> dict[str, Any]:
    """Row counts and columns of a `datasets.Dataset` or `DatasetDict` for the manifest."""
    if hasattr(ds, "keys") and not hasattr(ds, "column_names") or isinstance(getattr(ds, "column_names", None), dict):
        return {k: {"rows": len(v), "columns": list(v.column_names)} for k, v in ds.items()}
    return {"rows": len(ds), "columns": list(ds.column_names)}


def require_columns(ds: Any, columns: Iterable[str], what: str = "input dataset") -> None:
    cols = set(ds.column_names)
    missing = [c for c in columns if c not in cols]
    if missing:
        raise InputArtifactError(
            f"{what} lacks column(s) {', '.join(missing)} (has: {', '.join(sorted(cols))})",
            hint="map your columns in the recipe, e.g. `columns: {prompt: question, answer: final}`",
        )
