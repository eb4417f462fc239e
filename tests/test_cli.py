"""The `r1` command: help, version, lazy imports, exit codes and the one-line error boundary."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

COMMANDS = ["base", "data", "coldstart", "rl", "reject-sample", "align", "distill", "eval", "reward-model", "merge"]


def r1(*args, cwd=None, env=None):
    e = dict(os.environ)
    e.pop("R1CLI_DEBUG", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "r1cli", *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=120
    )


def test_help_lists_all_commands_fast():
    r1("--help")  # warm the page cache
    t = time.perf_counter()
    r = r1("--help")
    elapsed = time.perf_counter() - t
    assert r.returncode == 0
    for c in COMMANDS:
        assert c in r.stdout
    assert elapsed < 1.5, f"r1 --help took {elapsed:.2f}s"


def test_cli_import_is_light():
    code = "import sys, r1cli.cli; bad = [m for m in ('torch', 'trl', 'transformers', 'datasets') if m in sys.modules]; print(bad)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_version():
    from r1cli import __version__

    r = r1("--version")
    assert r.returncode == 0 and __version__ in r.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help_with_common_options(cmd):
    r = r1(cmd, "--help")
    assert r.returncode == 0, r.stderr
    for opt in ("--recipe", "--set", "--output", "--seed", "--resume", "--overwrite", "--debug"):
        assert opt in r.stdout, f"{cmd} lacks {opt}"


def _one_error_line(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1
    return lines[0]


def test_unknown_yaml_key_exit_2(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("k: 2\nbogus_key: 1\n")
    r = r1("eval", "--recipe", str(p), "--output", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "bogus_key" in _one_error_line(r)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["eval", "--set", "k=abc"], 2, "k: 'abc'"),
        (["eval", "--set", "temperature=-1"], 2, "temperature"),
        (["eval", "--set", "nokey"], 2, "key=value"),
        (["eval", "--recipe", "/nonexistent.yaml"], 2, "does not exist"),
        (["eval", "--no-such-option"], 2, "no-such-option"),
        (["data", "--task", "sudoku"], 2, "'arith'"),
        (["data", "--n", "0"], 2, "n must be > 0"),
        (["base", "--preset", "huge"], 2, "'tiny'"),
        (["nosuchcommand"], 2, "nosuchcommand"),
        (["eval", "--resume", "--overwrite", "--output", "x"], 2, "exclude"),
    ],
)
def test_usage_and_config_errors(args, code, needle, tmp_path):
    r = r1(*args, cwd=tmp_path)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert needle in _one_error_line(r)


def test_non_empty_output_refused_and_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    r = r1("data", "--output", str(out), "--n", "3")
    assert r.returncode == 2
    assert "not empty" in _one_error_line(r)
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_traceback_only_in_debug(tmp_path):
    r = r1("eval", "--set", "k=abc")
    assert "Traceback" not in r.stderr
    r = r1("eval", "--set", "k=abc", env={"R1CLI_DEBUG": "1"})
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_print_config_shows_help_and_resolved_values():
    r = r1("eval", "--set", "k=7", "--print-config")
    assert r.returncode == 0
    assert "k: 7" in r.stdout and "# Samples per problem" in r.stdout


def test_distill_flags_reach_the_config():
    r = r1("distill", "--teacher", "runs/t", "--generate-only", "--print-config")
    assert r.returncode == 0, r.stderr
    assert "teacher: runs/t" in r.stdout and "generate_only: true" in r.stdout and "train_only: false" in r.stdout


def test_module_and_console_script_agree():
    exe = Path(sys.executable).parent / "r1"
    if not exe.exists():
        pytest.skip("console script not installed")
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == r1("--version").stdout


def test_held_logs_drop_on_input_errors_and_release_for_long_steps(capsys):
    """r1's log lines inside `held_logs` print after the block, vanish when it raises an input error, and print at
    once when a long step (a preset build) releases them."""
    from r1cli.console import held_logs, log, release_held
    from r1cli.errors import InputArtifactError, StageError

    with held_logs():
        log("prompts: 3 rows")
        assert capsys.readouterr().err == ""
    assert "prompts: 3 rows" in capsys.readouterr().err
    with pytest.raises(InputArtifactError), held_logs():
        log("benchmark x: 5 problems")
        raise InputArtifactError("bad model")
    assert capsys.readouterr().err == ""
    with pytest.raises(StageError), held_logs():  # a stage failure keeps the context
        log("rewards: accuracy")
        raise StageError("boom")
    assert "rewards: accuracy" in capsys.readouterr().err
    with held_logs():
        log("prompts: 3 rows")
        release_held()
        assert "prompts: 3 rows" in capsys.readouterr().err
        log("building tiny base")
        assert "building tiny base" in capsys.readouterr().err
