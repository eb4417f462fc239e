"""r1cli.thirdparty: bitsandbytes blocked and restored as if it had been importable all along, and the two
records its CPU backend logs when it is really needed dropped (only those)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1cli.thirdparty import needs_bitsandbytes

TESTS = Path(__file__).parent

SCRIPT = f"""
import importlib.util, sys
sys.path.insert(0, {str(TESTS)!r})
import netguard
netguard.install(None)
from r1cli.thirdparty import allow_bitsandbytes, defer_bitsandbytes, undefer_bitsandbytes

assert defer_bitsandbytes()
assert importlib.util.find_spec("bitsandbytes") is None  # what transformers/peft/accelerate ask
try:
    import bitsandbytes
    raise SystemExit("bitsandbytes imported while blocked")
except ImportError:
    pass
import peft  # peft.helpers tries bitsandbytes when imported
import peft.import_utils as pi
assert not pi.is_bnb_available() and "bitsandbytes" not in [m for m, v in sys.modules.items() if v is not None]

undefer_bitsandbytes()  # the end of a command: a later one in this process may need it
assert importlib.util.find_spec("bitsandbytes") is not None and pi.is_bnb_available()
bnb = allow_bitsandbytes()  # a 4-bit load
import peft.helpers
assert peft.helpers.bnb is bnb and bnb.nn.Linear4bit
print("ok")
"""


def test_needs_bitsandbytes():
    ns = SimpleNamespace
    assert needs_bitsandbytes(ns(load_in_4bit=True, optim="adamw_torch"))
    assert not needs_bitsandbytes(ns(load_in_4bit=False, optim="adamw_torch"))
    assert not needs_bitsandbytes(ns())  # eval, data, base: no optimizer, no 4-bit field
    for optim in ("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_32bit", "lion_32bit", "ademamix", "rmsprop_bnb"):
        assert needs_bitsandbytes(ns(load_in_4bit=False, optim=optim)), optim


@pytest.mark.parametrize("offline", [False, True], ids=["hub-online-mode", "HF_HUB_OFFLINE"])
def test_block_lift_and_quiet_import(offline):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stdout + r.stderr
    # bitsandbytes' CPU backend asks the hub for a kernel and warns when it cannot have it: those records only
    assert r.stderr == "", r.stderr


def test_only_the_new_score_head_report_is_dropped():
    import logging

    from r1cli.thirdparty import _DropNewScoreHeadReport

    head = "\x1b[1mQwen2ForSequenceClassification LOAD REPORT\x1b[0m from: base\nKey          | Status  | \n" \
           "-------------+---------+-\n"
    new_head = head + "score.weight | \x1b[31mMISSING\x1b[0m | \n\nNotes:\n- MISSING:\tnewly initialized"
    also_mismatch = new_head.replace("\n\nNotes", "\nmodel.norm.weight | MISMATCH | Reinit\n\nNotes")
    causal = new_head.replace("ForSequenceClassification", "ForCausalLM")

    def kept(msg: str) -> bool:
        return _DropNewScoreHeadReport().filter(logging.LogRecord("t", logging.WARNING, "", 0, msg, None, None))

    assert not kept(new_head)
    assert kept(also_mismatch) and kept(causal) and kept("some other warning")
