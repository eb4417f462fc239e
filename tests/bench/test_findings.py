"""bench/findings.py reads run folders and writes the notes and PNGs with the numbers it read."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def findings():
    spec = importlib.util.spec_from_file_location("findings", ROOT / "bench" / "findings.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rl(path: Path, acc0: float, acc1: float, steps: int = 20, total: float = 100.0) -> Path:
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w") as f:
        for s in range(1, steps + 1):
            a = acc0 + (acc1 - acc0) * (s - 1) / (steps - 1)
            f.write(json.dumps({"step": s, "loss": 0.0, "rewards/accuracy/mean": a,
                                "completions/mean_length": 20 + s}) + "\n")
    (path / "manifest.json").write_text(json.dumps({"status": "complete", "metrics": {"steps": steps},
                                                     "timings": {"train": total - 5, "total": total}}))
    return path


def _ev(path: Path, p1: float) -> Path:
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"benchmarks": {"t": {
        "n_problems": 100, "k": 4, "pass@1": p1, "cons@k": p1, "format_rate": 1.0, "mean_length": 30.0,
        "ci": {"pass@1": {"se": 0.01}}}}}))
    (path / "manifest.json").write_text(json.dumps({"status": "complete", "timings": {"total": 3.0}}))
    return path


def test_r1zero_note_has_read_numbers(findings, tmp_path, capsys):
    rl = _rl(tmp_path / "rl", 0.1, 0.5)
    findings.main(["r1zero", "--rl", str(rl), "--eval-before", str(_ev(tmp_path / "e0", 0.123)),
                   "--eval-after", str(_ev(tmp_path / "e1", 0.456)), "--out", str(tmp_path / "out")])
    fig = json.loads(capsys.readouterr().out)
    assert fig["steps"] == 20 and fig["rollout_acc_last10"] > fig["rollout_acc_first10"]
    note = (tmp_path / "out" / "finding_r1zero.md").read_text()
    assert "12.3%" in note and "45.6%" in note
    assert (tmp_path / "out" / "finding_r1zero.png").stat().st_size > 1000


def test_coldstart_and_distill(findings, tmp_path, capsys):
    out = tmp_path / "out"
    findings.main(["coldstart", "--rl-without", str(_rl(tmp_path / "a", 0.1, 0.3)),
                   "--rl-with", str(_rl(tmp_path / "b", 0.2, 0.4)), "--eval-base", str(_ev(tmp_path / "e0", 0.1)),
                   "--eval-coldstart", str(_ev(tmp_path / "e1", 0.2)), "--eval-without", str(_ev(tmp_path / "e2", 0.3)),
                   "--eval-with", str(_ev(tmp_path / "e3", 0.35)), "--out", str(out)])
    assert "+5.0 points" in (out / "finding_coldstart.md").read_text()
    findings.main(["distill", "--distill", str(_rl(tmp_path / "d", 0, 0, total=61.0)),
                   "--rl", str(_rl(tmp_path / "r", 0, 0, total=59.0)), "--eval-student", str(_ev(tmp_path / "f0", 0.1)),
                   "--eval-distill", str(_ev(tmp_path / "f1", 0.3)), "--eval-rl", str(_ev(tmp_path / "f2", 0.2)),
                   "--out", str(out)])
    note = (out / "finding_distill.md").read_text()
    assert "distill 61 s" in note and "+10.0 points" in note
    assert (out / "finding_distill.png").is_file() and (out / "finding_coldstart.png").is_file()
    capsys.readouterr()
