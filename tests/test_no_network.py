"""`r1 --help`, `r1 eval --help` and a config error make no network connection and print nothing but their own
output, with and without HF_HUB_OFFLINE; a config error imports no bitsandbytes (whose CPU backend asks the hub
for a kernel on import) and a YAML error not even torch.

Each command runs in a fresh `python tests/netguard.py` process, which fails and records every name lookup and
INET connect (so an attempt cannot hang on a machine that has no route, and is seen on one that has).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NETGUARD = Path(__file__).with_name("netguard.py")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def r1_fenced(tmp_path: Path, *args: str, offline: bool) -> tuple[subprocess.CompletedProcess, list[str], list[str]]:
    """(result, network attempts, heavy libraries imported) of `r1 ARGS` in a fresh fenced process."""
    netlog, modlog = tmp_path / "net.log", tmp_path / "mod.log"
    netlog.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARS and k != "R1CLI_DEBUG"}
    env.update(R1CLI_NETLOG=str(netlog), R1CLI_MODLOG=str(modlog), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    r = subprocess.run([sys.executable, str(NETGUARD), *args], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    attempts = netlog.read_text().splitlines() if netlog.exists() else []
    modules = modlog.read_text().split() if modlog.exists() else []
    return r, attempts, modules


def test_the_fence_records_and_fails_a_connection(tmp_path):
    """Control: the fence sees a lookup + connect that a library would make (else the tests below prove nothing)."""
    code = (
        f"import sys; sys.path.insert(0, {str(NETGUARD.parent)!r}); import netguard; netguard.install({str(tmp_path / 'n')!r})\n"
        "import urllib.request\n"
        "try:\n    urllib.request.urlopen('https://huggingface.co/api/models/gpt2', timeout=5)\n"
        "except OSError as e:\n    print('failed', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "failed" in r.stdout, r.stdout + r.stderr
    assert "getaddrinfo 'huggingface.co'" in (tmp_path / "n").read_text()


@pytest.mark.parametrize("offline", [False, True], ids=["hub-online-mode", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("args", [["--help"], ["eval", "--help"]], ids=["r1-help", "eval-help"])
def test_help_is_offline_and_light(tmp_path, args, offline):
    r, attempts, modules = r1_fenced(tmp_path, *args, offline=offline)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout and r.stderr == ""
    assert attempts == []
    assert modules == [], f"`r1 {' '.join(args)}` imported {modules}"


@pytest.mark.slow
@pytest.mark.parametrize("offline", [False, True], ids=["hub-online-mode", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("stage", ["rl", "coldstart"])
def test_config_error_is_one_line_offline_without_bitsandbytes(tmp_path, stage, offline):
    (tmp_path / "bad.yaml").write_text("this_key_does_not_exist: 1\n")
    r, attempts, modules = r1_fenced(tmp_path, stage, "--recipe", "bad.yaml", offline=offline)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "error: unknown config key 'this_key_does_not_exist'",
        f"hint: `r1 <stage> --print-config` lists the keys of {'RLConfig' if stage == 'rl' else 'ColdstartConfig'}",
    ], r.stderr
    assert r.stdout == ""
    assert attempts == []
    assert "bitsandbytes" not in modules


@pytest.mark.slow
def test_config_error_of_a_4bit_recipe_imports_no_bitsandbytes(tmp_path):
    """The config is resolved with bitsandbytes blocked even when it asks for 4-bit (lifted only once it is valid)."""
    (tmp_path / "qlora.yaml").write_text("load_in_4bit: true\nuse_peft: true\nlearnig_rate: 1e-5\n")
    r, attempts, modules = r1_fenced(tmp_path, "rl", "--recipe", "qlora.yaml", offline=False)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == "error: unknown config key 'learnig_rate'", r.stderr
    assert len(r.stderr.splitlines()) == 2 and attempts == [] and "bitsandbytes" not in modules


@pytest.mark.parametrize("offline", [False, True], ids=["hub-online-mode", "HF_HUB_OFFLINE"])
def test_yaml_error_imports_no_torch(tmp_path, offline):
    (tmp_path / "broken.yaml").write_text("learning_rate: [1e-3\n")
    r, attempts, modules = r1_fenced(tmp_path, "rl", "--recipe", "broken.yaml", offline=offline)
    assert r.returncode == 2
    assert [ln.split(":")[0] for ln in r.stderr.splitlines()] == ["error", "hint"], r.stderr
    assert "not valid YAML" in r.stderr
    assert attempts == [] and modules == []
