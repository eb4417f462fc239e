"""Reproducible by seed (issue 17): a reject-sample -> sft chain run twice, in two fresh processes under different
conditions, writes the same data rows and bit-identical weights; the manifests record the runtime that results
may still depend on.

Varied between the two runs (what a result must not depend on): the free memory the generation engine sees (the
second run reports 128 MiB, where the engine's old memory-sized batches would have shrunk), the Python hash seed,
the torch thread count while sampling (measured not to change samples: reject-sample 64 prompts x 8 on 1 vs 2
threads, same content hash), the working directory and the runs running side by side. Kept equal: the seed, the
config and the SFT thread count (1 vs 2 threads change SFT weights by float rounding, max |dw| ~4e-6: recorded
in `runtime.torch_threads`, not pinned; see `r1cli.runs.folder.runtime_facts`; at this test's size 1 vs 2 SFT
threads happen to give equal weights, so the test could not tell).

The judge is a real local endpoint that accepts everything, so the rows kept are the first distinct samples of
each prompt: they show every sampled text, not just a count (the tiny-test base is never right on its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chat_server import ChatServer

CHAIN = textwrap.dedent("""
    import os, sys
    import torch
    import r1cli.generation as g
    if os.environ.get("TEST_FREE_RAM"):  # what /proc/meminfo would say on a busier machine
        g._available_ram = lambda: int(os.environ["TEST_FREE_RAM"])
    from r1cli.cli import main

    def r1(*args):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            if e.code:
                raise

    base, recipes, out, sample_threads = sys.argv[1:5]
    torch.set_num_threads(int(sample_threads))
    r1("reject-sample", "--recipe", f"{recipes}/reject.yaml", "--model", base, "--seed", 3, "--output", f"{out}/reject")
    torch.set_num_threads(1)
    r1("coldstart", "--recipe", f"{recipes}/sft.yaml", "--model", base, "--input", f"{out}/reject", "--seed", 3,
       "--output", f"{out}/sft")
""")

QUESTIONS = [("Name the capital of France.", "Paris"), ("Which planet is called the red planet?", "Mars"),
             ("What colour is a clear daytime sky?", "blue"), ("Who wrote Hamlet?", "Shakespeare"),
             ("Name a noble gas.", "neon")]


def _recipes(root: Path, judge_url: str) -> Path:
    root.mkdir()
    (root / "rows.jsonl").write_text("".join(json.dumps({"question": q, "final": a}) + "\n" for q, a in QUESTIONS))
    (root / "reject.yaml").write_text(textwrap.dedent(f"""
        input: {root / "rows.jsonl"}
        columns: {{prompt: question, answer: final}}
        n: 6
        max_keep: 3
        temperature: 1.0
        top_p: 0.95
        max_new_tokens: 24
        shard_size: 2
        decontaminate: false
        drop_truncated: false
        filters: {{require_format: false, max_paragraph_chars: null, max_repetition: null,
                   max_language_mixing: null, allow_code_blocks: true}}
        judge: {{backend: remote, url: "{judge_url}", model: judge}}
    """))
    (root / "sft.yaml").write_text(textwrap.dedent("""
        learning_rate: 1.0e-3
        num_train_epochs: 2
        per_device_train_batch_size: 4
        max_length: 256
        save_steps: 1000
        logging_steps: 1
        disable_tqdm: true
    """))
    return root


def _start(base: Path, recipes: Path, out: Path, *, sample_threads: int, env: dict[str, str]) -> subprocess.Popen:
    e = {k: v for k, v in os.environ.items() if k not in ("TEST_FREE_RAM", "R1CLI_DEBUG")}
    e.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", R1CLI_QUIET="1", HF_HUB_OFFLINE="1",
             HF_DATASETS_OFFLINE="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **env)
    out.mkdir(parents=True)
    log = open(out / "chain.log", "wb")  # noqa: SIM115  (closed with the test's tmp dir)
    return subprocess.Popen([sys.executable, "-c", CHAIN, str(base), str(recipes), str(out), str(sample_threads)],
                            cwd=out, stdout=log, stderr=log, env=e)


@pytest.mark.slow
def test_reject_sample_then_sft_is_reproducible_by_seed(tiny_base_path, tmp_path):
    import datasets
    import torch
    from safetensors.torch import load_file

    srv = ChatServer(lambda body: "CORRECT")
    try:
        recipes = _recipes(tmp_path / "recipes", srv.url)
        t0 = time.perf_counter()
        runs = {
            "a": _start(tiny_base_path, recipes, tmp_path / "a", sample_threads=1, env={"PYTHONHASHSEED": "0"}),
            "b": _start(tiny_base_path, recipes, tmp_path / "b", sample_threads=2,
                        env={"PYTHONHASHSEED": "4242", "TEST_FREE_RAM": str(128 << 20)}),
        }
        for name, p in runs.items():
            assert p.wait(timeout=300) == 0, (tmp_path / name / "chain.log").read_text()[-4000:]
        seconds = time.perf_counter() - t0
    finally:
        srv.close()
    a, b = tmp_path / "a", tmp_path / "b"

    rows = datasets.load_from_disk(str(a / "reject" / "data")).to_list()
    assert len(rows) >= 2 * len(QUESTIONS), "too few rows kept for the test to mean anything"
    assert datasets.load_from_disk(str(b / "reject" / "data")).to_list() == rows
    assert (a / "reject" / "shards.jsonl").read_bytes() == (b / "reject" / "shards.jsonl").read_bytes()

    wa, wb = (load_file(str(r / "sft" / "model" / "model.safetensors")) for r in (a, b))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "SFT weights differ"
    base = load_file(str(Path(tiny_base_path) / "model.safetensors"))
    assert any(not torch.equal(wa[k], base[k]) for k in wa if k in base), "SFT did not train"

    man = {(r.name, s): json.loads((r / s / "manifest.json").read_text()) for r in (a, b) for s in ("reject", "sft")}
    assert man[("a", "sft")]["metrics"]["rows"] == len(rows)
    for (run, stage), m in man.items():
        rt = m["runtime"]
        # the runtime a result may depend on is recorded; memory never cut a default batch (none was memory-sized)
        assert rt["torch_threads"] == (2 if (run, stage) == ("b", "reject") else 1), (run, stage, rt)
        assert rt["env"]["OMP_NUM_THREADS"] == "1" and rt["cpu_count"] == os.cpu_count()
        assert "generation_memory_caps" not in rt
    print(f"two reject-sample -> sft chains side by side: {seconds:.1f} s")
