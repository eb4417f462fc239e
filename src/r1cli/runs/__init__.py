"""Everything about a stage's run folder, one module per job:

- `folder.py` — the run folder (`RunDir`: prepare / --overwrite / --resume checks, config.yaml, manifest.json
  written last), input resolution (`InputRef`, `resolve_input`), atomic writes and hashing;
- `ranks.py` — the ranks of a multi-process launch (world size, rank, broadcast, barrier, set-up and end);
- `keyedlog.py` — the one resumable keyed JSONL log (eval's samples, distill's traces, reject-sample's shards);
- `checkpoints.py` — Trainer checkpoints that are never picked up half-written.

Importing it is cheap (no torch): callers take what they need from here.
"""

from r1cli.runs.checkpoints import MARKER, last_complete_checkpoint, marker_callback
from r1cli.runs.folder import (
    CONFIG,
    MANIFEST,
    SCHEMA_VERSION,
    SUBDIR,
    InputRef,
    Kind,
    RunDir,
    atomic_write_text,
    combine_hashes,
    dataset_summary,
    git_sha,
    hash_tree,
    read_manifest,
    require_columns,
    resolve_input,
    sha256_file,
)
from r1cli.runs.keyedlog import KeyedLog
from r1cli.runs.ranks import (
    barrier,
    broadcast_from_main,
    debug_rank_hash,
    end_processes,
    is_main_process,
    process_rank,
    setup_processes,
    world_size,
)

__all__ = [
    "CONFIG",
    "MANIFEST",
    "MARKER",
    "SCHEMA_VERSION",
    "SUBDIR",
    "InputRef",
    "KeyedLog",
    "Kind",
    "RunDir",
    "atomic_write_text",
    "barrier",
    "broadcast_from_main",
    "combine_hashes",
    "dataset_summary",
    "debug_rank_hash",
    "end_processes",
    "git_sha",
    "hash_tree",
    "is_main_process",
    "last_complete_checkpoint",
    "marker_callback",
    "process_rank",
    "read_manifest",
    "require_columns",
    "resolve_input",
    "setup_processes",
    "sha256_file",
    "world_size",
]
