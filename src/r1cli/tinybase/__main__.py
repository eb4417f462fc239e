"""`python -m r1cli.tinybase`: build (or reuse) a tiny base and print its style report (one JSON line)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from r1cli.tinybase.cache import ensure_base
from r1cli.tinybase.config import PRESETS
from r1cli.tinybase.report import style_report


def main(argv: list[str] | None = None) -> None:
    """`python -m r1cli.tinybase [--preset tiny] [--seed 0] [--train-steps N] [--n 1000]`: build (or reuse) a tiny
    base and print its `style_report` as one JSON line on stdout."""
    import argparse

    import torch

    ap = argparse.ArgumentParser(prog="python -m r1cli.tinybase", description=main.__doc__)
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also copy the built folder here (a plain HF folder for --model)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    path = ensure_base(a.preset, seed=a.seed, train_steps=a.train_steps)
    if a.out:
        out = Path(a.out)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(path, out, ignore=lambda d, names: [n for n in names if n.endswith(".lock")])
        path = out
    print(json.dumps({"preset": a.preset, "seed": a.seed, "path": str(path), **style_report(path, n=a.n, seed=a.seed)}))


if __name__ == "__main__":
    main()
