"""Training stages under `accelerate launch` (2 CPU processes, gloo): the shipped configs translate into launcher
settings; rank 0 alone prepares and writes the output folder while other ranks wait for its verdict; `r1 rl` and
`r1 coldstart` finish with both ranks holding the same weights and only rank 0 writing the output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "recipes" / "accelerate"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "R1CLI_QUIET")}
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false", **extra)
    return env


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3", "fsdp"])
def test_config_translates_to_launcher_settings(name):
    """Each config goes through accelerate's own validation and env preparation (deepspeed need not be installed)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / f"{name}.yaml"), "-m", "r1cli", "rl"])
    args, defaults, _ = _validate_launch_command(args)
    if name.startswith("zero"):
        assert args.use_deepspeed
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == name[-1]
    else:
        env = prepare_multi_gpu_env(args)
        if name == "fsdp":
            assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
        else:
            assert args.multi_gpu and env["ACCELERATE_MIXED_PRECISION"] == "no"


_PREPARE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from r1cli.runs import RunDir, barrier, end_processes, process_rank
    from r1cli.errors import UsageError

    out = Path(sys.argv[1])
    rec = {}
    run = RunDir.prepare(out, "rl", "model")
    rec["first"] = {"path": str(run.path), "is_main": run.is_main}
    run.write_config({"a": 1})
    (run.model_dir).mkdir()
    (run.model_dir / f"weights{process_rank()}.txt").write_text("x")
    man = run.complete({"a": 1})
    run.close()
    rec["scratch_left"] = run.path.exists()
    barrier()
    try:
        RunDir.prepare(out, "rl", "model")
    except UsageError as e:
        rec["again"] = e.message
    run = RunDir.prepare(out, "rl", "model", overwrite=True)
    rec["overwrite"] = str(run.path)
    run.close()
    end_processes()
    print(json.dumps(rec))
    """
)


def test_prepare_rank0_decides_for_all(tmp_path):
    """Two gloo ranks call RunDir.prepare on one folder: rank 0 creates it and writes config + manifest, rank 1
    gets a scratch folder (removed by close); a not-empty folder fails the same way on both ranks; --overwrite
    replaces it without rank 1 tripping over rank 0's files."""
    out = tmp_path / "run"
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PREPARE, str(out)],
            env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    res = [p.communicate(timeout=120) for p in procs]
    for p, (_, e) in zip(procs, res, strict=True):
        assert p.returncode == 0, e[-2000:]
    r0, r1 = (json.loads(o.strip().splitlines()[-1]) for o, _ in res)
    assert r0["first"] == {"path": str(out), "is_main": True}
    assert r1["first"]["is_main"] is False and not r1["first"]["path"].startswith(str(out))
    assert r0["scratch_left"] and not r1["scratch_left"]  # rank 0 kept the output, rank 1 removed its scratch
    assert "is not empty" in r0["again"] and r1["again"] == r0["again"]
    assert r0["overwrite"] == str(out) and r1["overwrite"] != str(out)
    assert sorted(p.name for p in out.iterdir()) == []  # overwrite emptied it; nothing of rank 1 there


def _launch(args: list[str], hashes: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch",
        "--config_file", str(CONFIGS / "ddp.yaml"), "--num_processes", "2", "--main_process_port", str(_free_port()),
        "-m", "r1cli", *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, env=_env(R1CLI_DEBUG_RANK_HASH=str(hashes)), capture_output=True, text=True, timeout=400, cwd=ROOT
    )


def _check_ranks(hashes: Path, out: Path) -> None:
    recs = {r: json.loads((hashes / f"rank{r}.json").read_text()) for r in range(2)}
    for rec in recs.values():
        assert rec["world_size"] == 2 and rec["group_size"] == 2 and rec["backend"] == "gloo", rec
    s0, s1 = recs[0]["saves"], recs[1]["saves"]
    assert len(s0) == len(s1) == 1
    assert s0[0]["dir"] == str(out / "model")
    assert not s1[0]["dir"].startswith(str(out)) and not Path(s1[0]["dir"]).exists()  # scratch, removed
    assert s0[0]["state_dict_sha256"] == s1[0]["state_dict_sha256"], "ranks ended with different weights"


def _changed(base: Path, trained: Path) -> bool:
    from safetensors.torch import load_file

    a, b = load_file(base / "model.safetensors"), load_file(trained / "model.safetensors")
    return any(not (a[k] == b[k]).all() for k in a)


@pytest.mark.slow
def test_rl_and_coldstart_under_accelerate_launch(tiny_base_path, tmp_path):
    # r1 rl: 2 GRPO steps, every rank samples its own prompts, DDP averages the gradients
    out, hashes = tmp_path / "rl", tmp_path / "h_rl"
    recipe = tmp_path / "rl.yaml"
    recipe.write_text(
        # -chars/40: differs between the completions of a group even when the tiny model is never right
        "rewards: [{name: accuracy}, {name: soft_overlong, params: {max_length: 40, buffer: 40, unit: chars}}]\n"
        "train_size: 32\nper_device_train_batch_size: 4\nnum_generations: 4\nmax_completion_length: 16\n"
        "max_steps: 2\nsave_steps: 100\nlearning_rate: 1.0e-3\ndisable_tqdm: true\n"
    )
    r = _launch(["rl", "--model", str(tiny_base_path), "--recipe", str(recipe), "--output", str(out), "--json"], hashes)
    assert r.returncode == 0, r.stderr[-3000:]
    results = [line for line in r.stdout.splitlines() if line.startswith('{"')]
    assert len(results) == 1, r.stdout  # rank 0 alone prints the result
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["metrics"]["steps"] == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml", "curves.png", "manifest.json", "metrics.jsonl", "model", "trainer"
    ]  # fmt: skip
    _check_ranks(hashes, out)
    assert _changed(tiny_base_path, out / "model")

    # r1 coldstart: SFT, 24 rows, 2 ranks x 4 rows per step
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"prompt": f"{i}+{i}", "completion": f"{2 * i}"}) for i in range(24)))
    out, hashes = tmp_path / "cs", tmp_path / "h_cs"
    out.mkdir()
    (out / "config.yaml").write_text("stale: run\n")  # an older run: --overwrite must replace it on rank 0 only
    sets = ["per_device_train_batch_size=4", "max_steps=2", "learning_rate=1e-3", "max_length=64",
            "save_steps=100", "disable_tqdm=true"]  # fmt: skip
    r = _launch(["coldstart", "--model", str(tiny_base_path), "--input", str(rows), "--output", str(out),
                 "--overwrite", *[a for s in sets for a in ("--set", s)]], hashes)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["metrics"]["steps"] == 2
    assert "stale" not in (out / "config.yaml").read_text()
    _check_ranks(hashes, out)
    assert _changed(tiny_base_path, out / "model")
