"""Run folders, manifests written last and atomically, and input-artifact checks (exit 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from r1cli.errors import InputArtifactError, UsageError
from r1cli.runs import RunDir, atomic_write_text, read_manifest, resolve_input
from r1cli.stages.data_config import DataConfig


def _finished_run(tmp_path, kind="dataset", stage="data", name="run"):
    rd = RunDir.prepare(tmp_path / name, stage, kind)
    sub = rd.data_dir if kind == "dataset" else rd.model_dir
    sub.mkdir()
    (sub / ("dataset_info.json" if kind == "dataset" else "config.json")).write_text("{}")
    cfg = DataConfig(n=3)
    rd.write_config(cfg)
    man = rd.complete(cfg, metrics={"x": 1}, data={"rows": 3, "columns": ["prompt"]})
    return rd, man


def test_manifest_contents_and_resolution(tmp_path):
    rd, man = _finished_run(tmp_path)
    on_disk = read_manifest(rd.path)
    assert on_disk == json.loads(json.dumps(man, default=str))
    for key in ("schema_version", "stage", "r1cli_version", "config", "inputs", "outputs", "metrics", "timings"):
        assert key in on_disk
    assert on_disk["status"] == "complete" and on_disk["outputs"]
    ref = resolve_input(rd.path, "dataset")
    assert ref.path == rd.data_dir and ref.content_hash == man["content_hash"]


def test_incomplete_or_wrong_kind_inputs_are_refused(tmp_path):
    rd, _ = _finished_run(tmp_path)
    with pytest.raises(InputArtifactError, match="a model is expected"):
        resolve_input(rd.path, "model")
    (rd.path / "manifest.json").unlink()
    with pytest.raises(InputArtifactError, match="no complete manifest"):
        resolve_input(rd.path, "dataset")
    (rd.path / "manifest.json").write_text('{"status": "failed", "kind": "dataset"}')
    with pytest.raises(InputArtifactError, match="status 'failed'"):
        resolve_input(rd.path, "dataset")
    (rd.path / "manifest.json").write_text("{not json")
    with pytest.raises(InputArtifactError):
        resolve_input(rd.path, "dataset")
    with pytest.raises(InputArtifactError, match="does not exist"):
        resolve_input(tmp_path / "missing", "model", allow_hub=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputArtifactError, match="neither"):
        resolve_input(tmp_path / "empty", "model")


def test_plain_hf_folders_and_hub_ids(tmp_path):
    m = tmp_path / "hfmodel"
    m.mkdir()
    (m / "config.json").write_text("{}")
    ref = resolve_input(m, "model")
    assert ref.path == m and ref.content_hash
    with pytest.raises(InputArtifactError, match="model folder"):
        resolve_input(m, "dataset")
    ref = resolve_input("Qwen/Qwen2.5-1.5B-Instruct", "model")
    assert ref.path is None and ref.spec == "Qwen/Qwen2.5-1.5B-Instruct"


def test_output_folder_rules(tmp_path):
    out = tmp_path / "out"
    RunDir.prepare(out, "data", "dataset")  # new: fine
    (out / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        RunDir.prepare(out, "data", "dataset")
    # --overwrite refuses to delete something that is not an r1cli run
    with pytest.raises(UsageError, match="not an r1cli run"):
        RunDir.prepare(out, "data", "dataset", overwrite=True)
    assert (out / "keep.txt").exists()
    rd, _ = _finished_run(tmp_path, name="done")
    RunDir.prepare(rd.path, "data", "dataset", resume=True)
    assert not (rd.path / "manifest.json").exists(), "a resumed run is not complete until it finishes"
    RunDir.prepare(rd.path, "data", "dataset", overwrite=True)
    assert list(rd.path.iterdir()) == []


def test_atomic_write_failure_leaves_old_file(tmp_path, monkeypatch):
    p = tmp_path / "manifest.json"
    atomic_write_text(p, '{"v": 1}')

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, '{"v": 2}')
    assert json.loads(p.read_text()) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["manifest.json"], "temp file left behind"


_WRITER = r"""
import json, sys
from r1cli.runs import atomic_write_text
p = sys.argv[1]
i = 0
print("ready", flush=True)
while True:
    i += 1
    atomic_write_text(__import__("pathlib").Path(p), json.dumps({"i": i, "pad": "x" * 2_000_000}))
"""


def test_manifest_killed_mid_write_is_never_partial(tmp_path):
    """kill -9 a process that rewrites a 2 MB manifest in a loop: the file is always absent or whole."""
    p = tmp_path / "manifest.json"
    for delay in (0.05, 0.13, 0.31):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(p)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if p.exists():
            data = json.loads(p.read_text())
            assert len(data["pad"]) == 2_000_000


def test_manifest_records_the_runtime_a_result_depends_on(tmp_path, monkeypatch):
    """Threads change float reductions (SFT weights differ by ~1e-5 between 1 and 2 threads), so the manifest says
    which ran: a result is reproducible by seed only under the same runtime."""
    import torch

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    _, man = _finished_run(tmp_path)
    rt = man["runtime"]
    assert rt["cpu_count"] == os.cpu_count() and rt["torch_threads"] == torch.get_num_threads()
    assert rt["world_size"] == 1 and rt["device"] and rt["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
