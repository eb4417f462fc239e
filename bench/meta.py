"""What every bench result records about where and when it ran (imported by the bench scripts as `meta`)."""

from __future__ import annotations

import datetime
import os
import platform


def machine() -> dict:
    """Cores, CPU model, load average now, library versions and a UTC timestamp."""
    import torch
    import transformers
    import trl

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__},
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main() -> None:
    """`python bench/meta.py OUT -- CMD...`: run a bench that prints one JSON line, add `machine` (taken before it
    runs: the load it started under) and `command` to it, write it to OUT and echo it on stdout."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out, cmd = Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 1:]
    before = machine()
    line = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout.strip().splitlines()[-1]
    res = json.loads(line)
    res.setdefault("command", " ".join(cmd))
    res.setdefault("machine", before)
    res.setdefault("load_avg_end", [round(x, 2) for x in os.getloadavg()])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
