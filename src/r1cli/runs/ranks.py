"""Ranks of a multi-process launch (`accelerate launch`, torchrun, mpirun).

Rank and world size come from the launcher's environment, so a single process never imports torch here;
`torch.distributed` is initialised (through `accelerate.PartialState`) only when a broadcast or barrier needs it.
`RunDir.prepare` (`r1cli.runs.folder`) uses them so that rank 0 alone prepares the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def _env_int(names: tuple[str, ...], default: int) -> int:
    for n in names:
        v = os.environ.get(n)
        if v not in (None, ""):
            return int(v)
    return default


def world_size() -> int:
    """Processes in this launch (torchrun / accelerate / mpirun environment); 1 outside a launcher."""
    return _env_int(("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"), 1)


def process_rank() -> int:
    """This process's global rank (0 outside a launcher)."""
    return _env_int(("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"), 0)


def is_main_process() -> bool:
    return process_rank() == 0


def setup_processes() -> None:
    """Call before building a trainer config. Under a multi-process launch on a machine without CUDA, set
    `ACCELERATE_USE_CPU=true` so that TrainingArguments and accelerate use DDP over gloo (the GPU launcher that
    `accelerate launch --multi_gpu` / `distributed_type: MULTI_GPU` uses does not set it; without it every rank
    would train alone), and silence `log()` on ranks other than 0 unless R1CLI_DEBUG is set."""
    if world_size() <= 1:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    if not is_main_process() and os.environ.get("R1CLI_DEBUG", "") in ("", "0", "false"):
        os.environ["R1CLI_QUIET"] = "1"


def _dist() -> Any:
    """`torch.distributed`, initialised through `accelerate.PartialState` if needed; None for one process."""
    if world_size() <= 1:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())
    return dist


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a barrier too); `obj` itself for one process."""
    dist = _dist()
    if dist is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    dist = _dist()
    if dist is not None:
        dist.barrier()


def end_processes(wait: bool = True) -> None:
    """Wait for every rank (unless `wait` is False: on an error path), then destroy the process group (a gloo group
    left to the interpreter's exit can abort it with "terminate called without an active exception", turning a
    clean exit code into 134). No-op for one process."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def debug_rank_hash(model: Any, out_dir: str | Path) -> None:
    """Debug aid for multi-process tests, a no-op unless `R1CLI_DEBUG_RANK_HASH=DIR` is set: append to
    `DIR/rank<N>.json` the sha256 of `model`'s state dict (every tensor's bytes, keys sorted) as this rank holds it
    in memory, with the folder it was being saved to and the process group this rank trained in."""
    folder = os.environ.get("R1CLI_DEBUG_RANK_HASH")
    if not folder:
        return
    import torch

    h = hashlib.sha256()
    for k, t in sorted(model.state_dict().items()):
        h.update(k.encode() + b"\0" + str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    rec: dict[str, Any] = {"rank": process_rank(), "world_size": world_size(), "saves": []}
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rec.update(backend=torch.distributed.get_backend(), group_size=torch.distributed.get_world_size())
    path = Path(folder) / f"rank{process_rank()}.json"
    if path.is_file():
        rec["saves"] = json.loads(path.read_text(encoding="utf-8"))["saves"]
    rec["saves"].append({"dir": str(out_dir), "state_dict_sha256": h.hexdigest()})
    from r1cli.runs.folder import atomic_write_text

    atomic_write_text(path, json.dumps(rec, indent=1) + "\n")
