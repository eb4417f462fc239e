"""examples/r1_walkthrough.ipynb: stored without outputs, and runs top to bottom (nbclient) on the tiny-test base."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "r1_walkthrough.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "the notebook has no code cells"
    for i, c in enumerate(code):
        assert c.get("outputs") == [], f"code cell {i} has stored outputs: strip them before committing"
        assert c.get("execution_count") is None, f"code cell {i} has an execution count"
    assert "widgets" not in nb.get("metadata", {})


@pytest.mark.slow
def test_notebook_runs_on_the_tiny_test_base(tiny_base_path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # small budget: the notebook's cells are the same, only the sizes shrink (the kernel inherits this env)
    for k, v in {"R1_WALKTHROUGH_MODEL": str(tiny_base_path), "R1_WALKTHROUGH_G": "4",
                 "R1_WALKTHROUGH_PROMPTS": "4", "R1_WALKTHROUGH_RL_STEPS": "2", "R1_WALKTHROUGH_MAX_NEW": "32",
                 "R1_WALKTHROUGH_EVAL_PROBLEMS": "8", "R1_WALKTHROUGH_DIR": str(tmp_path / "work"),
                 "R1_WALKTHROUGH_PREFLIGHT": "0",  # tiny-test's groups are all flat, which the preflight stops
                 "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    t = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    elapsed = time.perf_counter() - t
    print(f"notebook executed in {elapsed:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(pngs) >= 3, f"expected the group, training and eval plots inline, got {len(pngs)} images"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "advantage=" in text and "step   1" in text and "pass@1" in text
    assert (tmp_path / "work" / "rl" / "manifest.json").is_file()
