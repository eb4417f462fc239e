"""Trainer checkpoints that are never picked up half-written.

HF's `get_last_checkpoint` takes the highest-numbered `checkpoint-N` folder whether or not its save finished.
`CompleteMarker` (a `TrainerCallback`) writes `checkpoint-N/.r1cli-complete` only after the Trainer has saved
everything (model or adapter, optimizer, scheduler, RNG states, trainer_state.json), and
`last_complete_checkpoint` resumes from the newest folder that has the marker.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = ".r1cli-complete"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(folder: str | Path) -> str | None:
    folder = Path(folder)
    if not folder.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for p in folder.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / MARKER).is_file() and (p / "trainer_state.json").is_file():
            step = int(m.group(1))
            if best is None or step > best[0]:
                best = (step, p)
    return str(best[1]) if best else None


def marker_callback():
    """A TrainerCallback that marks each finished checkpoint (built lazily: transformers is heavy)."""
    from transformers import TrainerCallback

    class CompleteMarker(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                ck = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if ck.is_dir():
                    (ck / MARKER).write_text(str(state.global_step))
            return control

    return CompleteMarker()
