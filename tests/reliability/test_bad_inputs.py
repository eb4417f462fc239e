"""Bad inputs across the `r1` commands: each prints exactly one error line (plus at most one hint) and nothing else
on stderr, exits with the documented code (2 config/usage, 3 bad input artifact), prints nothing on stdout, makes
no network attempt, and leaves every existing file untouched.

The cases run through the CLI's real error boundary (`r1cli.cli.main`) in one fresh interpreter
(`_driver.py`: the whole stderr of each case captured at the file-descriptor level, the network fenced off by
`tests/netguard.py`), once with HF_HUB_OFFLINE unset and a representative subset again with HF_HUB_OFFLINE=1;
a handful also run as processes of their own (`python -m r1cli`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from .conftest import (
    NoisyStderr,
    Result,
    assert_only_error,
    error_line,
    r1_driver,
    r1_inproc,
    r1_subprocess,
    tree_hash,
)

USAGE, INPUT = 2, 3


@dataclass
class Case:
    id: str
    args: Callable[[SimpleNamespace, Path], list]  # (artifacts, fresh output path) -> argv
    code: int
    needle: str  # a substring of the error line (case-insensitive)
    # a known leak on stderr (log lines, library output before the error) in a file this suite's author does not
    # own (fix requested): the case's other checks still run, the stderr-only check is expected to fail
    xfail: str | None = None


def _copy_model(src: Path, dst: Path, **config_changes) -> Path:
    shutil.copytree(src, dst)
    if config_changes:
        cfg = json.loads((dst / "config.json").read_text())
        cfg.update(config_changes)
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.fixture(scope="module")
def arts(tmp_path_factory, tiny_base_path) -> SimpleNamespace:
    """Good and bad artifacts shared by the cases (built once; every case checks they stay untouched)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    a = SimpleNamespace(root=root, base=Path(tiny_base_path))

    # good r1cli runs
    a.data_run = root / "data_run"
    a.cs_run = root / "cs_run"
    a.model_run = root / "model_run"
    for args in (["data", "--n", "8", "--output", a.data_run],
                 ["data", "--n", "8", "--cold-start", "--output", a.cs_run],
                 ["base", "--preset", "tiny-test", "--set", "eval_n=0", "--output", a.model_run]):
        r = r1_inproc(*args)
        assert r.code == 0, r.stderr
    # runs that did not finish
    a.incomplete_run = root / "incomplete_run"
    shutil.copytree(a.data_run, a.incomplete_run)
    (a.incomplete_run / "manifest.json").unlink()
    a.running_run = root / "running_run"
    shutil.copytree(a.data_run, a.running_run)
    man = json.loads((a.running_run / "manifest.json").read_text())
    man["status"] = "running"
    (a.running_run / "manifest.json").write_text(json.dumps(man))
    a.plain_dir = root / "plain_dir"
    a.plain_dir.mkdir()
    (a.plain_dir / "notes.txt").write_text("not an artifact\n")

    # model folders that must be refused
    a.unknown_type = _copy_model(a.base, root / "unknown_type", model_type="nosuchmodel",
                                 architectures=["NoSuchModelForCausalLM"])
    a.bert = root / "bert"
    a.bert.mkdir()
    (a.bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"],
                                                    "hidden_size": 32, "num_hidden_layers": 1,
                                                    "num_attention_heads": 2, "intermediate_size": 64}))
    a.mismatched = _copy_model(a.base, root / "mismatched", hidden_size=128, intermediate_size=256)
    a.bin_only = _copy_model(a.base, root / "bin_only")
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(a.bin_only / "model.safetensors"), a.bin_only / "pytorch_model.bin")
    (a.bin_only / "model.safetensors").unlink()
    # a checkpoint that needs its own code: importing it would create PWNED
    a.remote = _copy_model(a.base, root / "remote", model_type="r1cli_custom",
                           architectures=["CustomForCausalLM"],
                           auto_map={"AutoConfig": "modeling_custom.CustomConfig",
                                     "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"})
    a.pwned = root / "PWNED"
    (a.remote / "modeling_custom.py").write_text(f"open({str(a.pwned)!r}, 'w').write('ran')\n")
    a.corrupt_st = _copy_model(a.base, root / "corrupt_st")
    (a.corrupt_st / "model.safetensors").write_bytes((a.base / "model.safetensors").read_bytes()[:200])
    a.bad_json = _copy_model(a.base, root / "bad_json")
    (a.bad_json / "config.json").write_text("{not json")
    a.no_tok = _copy_model(a.base, root / "no_tok")
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (a.no_tok / f).unlink(missing_ok=True)

    # datasets that must be refused
    a.empty_jsonl = root / "empty.jsonl"
    a.empty_jsonl.write_text("")
    a.nocols = root / "nocols.jsonl"
    a.nocols.write_text("\n".join(json.dumps({"q": f"{i}+1", "a": str(i + 1)}) for i in range(4)) + "\n")
    a.malformed_jsonl = root / "malformed.jsonl"
    a.malformed_jsonl.write_text('{"prompt": "1+1", "completion": \n{oops\n')
    a.txt = root / "rows.txt"
    a.txt.write_text("1+1=2\n")
    from datasets import Dataset

    a.empty_ds = root / "empty_ds"
    Dataset.from_dict({"prompt": [], "completion": []}).save_to_disk(str(a.empty_ds))
    a.bad_results = root / "bad_results"
    a.bad_results.mkdir()
    (a.bad_results / "results.json").write_text("{truncated")

    # recipes
    a.bad_yaml = root / "bad.yaml"
    a.bad_yaml.write_text("k: [1, 2\nlimit: 3\n")
    a.bad_yaml2 = root / "bad2.yaml"
    a.bad_yaml2.write_text("learning_rate: 1e-3\nnum_train_epochs: a: b\n")
    a.list_yaml = root / "list.yaml"
    a.list_yaml.write_text("- n\n- 3\n")
    a.binary_yaml = root / "binary.yaml"
    a.binary_yaml.write_bytes(b"\xff\xfe\x00\x81preset: tiny\n")
    a.unknown_yaml = root / "unknown.yaml"
    a.unknown_yaml.write_text("n: 3\nbogus_key: 1\n")
    a.unknown_cs_yaml = root / "unknown_cs.yaml"
    a.unknown_cs_yaml.write_text("learning_rate: 1e-3\nlearnig_rate_warmup: 3\n")
    return a


RL_TINY = ["--set", "max_steps=1", "--set", "train_size=8", "--set", "per_device_train_batch_size=4", "--set",
           "num_generations=2", "--set", "max_completion_length=8", "--set", "save_strategy=no"]


def M(a):  # a fast eval protocol, in case a bad input slips through and the stage runs
    return ["--k", "1", "--limit", "2", "--set", "max_new_tokens=8"]


CASES: list[Case] = [
    # ---- recipes: malformed YAML, not a mapping, missing, not text
    Case("eval-malformed-yaml", lambda a, o: ["eval", "--recipe", a.bad_yaml, "--output", o], USAGE, "not valid yaml"),
    Case("coldstart-malformed-yaml", lambda a, o: ["coldstart", "--recipe", a.bad_yaml2, "--output", o], USAGE,
         "not valid yaml"),
    Case("data-recipe-is-a-list", lambda a, o: ["data", "--recipe", a.list_yaml, "--output", o], USAGE,
         "must be a mapping"),
    Case("rl-recipe-missing", lambda a, o: ["rl", "--recipe", a.root / "nope.yaml", "--output", o], USAGE,
         "does not exist"),
    Case("base-recipe-not-text", lambda a, o: ["base", "--recipe", a.binary_yaml, "--output", o], USAGE, "recipe"),
    # ---- unknown keys
    Case("data-unknown-yaml-key", lambda a, o: ["data", "--recipe", a.unknown_yaml, "--output", o], USAGE,
         "bogus_key"),
    Case("base-unknown-set-key", lambda a, o: ["base", "--set", "layers=4", "--output", o], USAGE,
         "unknown config key 'layers'"),
    Case("eval-typo-key", lambda a, o: ["eval", "--set", "tempreature=0.6", "--output", o], USAGE, "tempreature"),
    Case("coldstart-unknown-yaml-key", lambda a, o: ["coldstart", "--recipe", a.unknown_cs_yaml, "--output", o],
         USAGE, "learnig_rate_warmup"),
    Case("rl-unknown-key", lambda a, o: ["rl", "--set", "reward_fns=[accuracy]", "--output", o], USAGE,
         "reward_fns"),
    Case("merge-unknown-key", lambda a, o: ["merge", "--model", a.base, "--set", "alpha=2", "--output", o], USAGE,
         "alpha"),
    Case("reject-sample-unknown-key", lambda a, o: ["reject-sample", "--set", "bogus_key=1", "--output", o], USAGE,
         "bogus_key"),
    Case("align-unknown-key", lambda a, o: ["align", "--set", "bogus_key=1", "--output", o], USAGE, "bogus_key"),
    Case("distill-unknown-key", lambda a, o: ["distill", "--set", "bogus_key=1", "--output", o], USAGE, "bogus_key"),
    Case("reward-model-unknown-key", lambda a, o: ["reward-model", "--set", "bogus_key=1", "--output", o], USAGE,
         "bogus_key"),
    # ---- wrong types
    Case("data-n-not-int", lambda a, o: ["data", "--set", "n=many", "--output", o], USAGE, "n: 'many'"),
    Case("eval-temperature-not-number", lambda a, o: ["eval", "--set", "temperature=hot", "--output", o], USAGE,
         "temperature"),
    Case("coldstart-lr-not-number", lambda a, o: ["coldstart", "--set", "learning_rate=fast", "--output", o], USAGE,
         "learning_rate"),
    Case("rl-generations-not-int", lambda a, o: ["rl", "--set", "num_generations=[2,4]", "--output", o], USAGE,
         "generations"),
    Case("base-train-steps-fraction", lambda a, o: ["base", "--set", "train_steps=1.5", "--output", o], USAGE,
         "train_steps"),
    Case("eval-bool-not-bool", lambda a, o: ["eval", "--set", "trust_remote_code=maybe", "--output", o], USAGE,
         "trust_remote_code"),
    Case("eval-columns-not-mapping", lambda a, o: ["eval", "--set", "columns=[a,b]", "--output", o], USAGE,
         "columns"),
    # ---- out-of-range values and bad choices
    Case("eval-top-p-range", lambda a, o: ["eval", "--set", "top_p=1.5", "--output", o], USAGE, "top_p"),
    Case("data-n-negative", lambda a, o: ["data", "--n", "-3", "--output", o], USAGE, "n must be > 0"),
    Case("base-eval-n-negative", lambda a, o: ["base", "--set", "eval_n=-1", "--output", o], USAGE, "eval_n"),
    Case("coldstart-lr-zero", lambda a, o: ["coldstart", "--set", "learning_rate=0", "--output", o], USAGE,
         "learning_rate must be > 0"),
    Case("eval-lora-dropout-range", lambda a, o: ["eval", "--set", "lora_dropout=1.0", "--output", o], USAGE,
         "lora_dropout"),
    Case("rl-4bit-without-peft", lambda a, o: ["rl", "--set", "load_in_4bit=true", "--output", o], USAGE,
         "use_peft"),
    Case("rl-one-generation", lambda a, o: ["rl", "--set", "num_generations=1", "--output", o], USAGE,
         "generations"),
    Case("eval-k-zero", lambda a, o: ["eval", "--k", "0", "--output", o], USAGE, "k must be >= 1"),
    Case("eval-backend-choice", lambda a, o: ["eval", "--set", "backend=tpu", "--output", o], USAGE, "backend"),
    Case("eval-dtype-choice", lambda a, o: ["eval", "--set", "dtype=float8", "--output", o], USAGE, "dtype"),
    Case("base-preset-choice", lambda a, o: ["base", "--preset", "huge", "--output", o], USAGE, "'tiny'"),
    Case("eval-unknown-benchmark", lambda a, o: ["eval", "--model", a.base, "--benchmark", "nosuchbench", *M(a),
                                                 "--output", o], USAGE,
         "nosuchbench"),
    Case("data-unknown-task-param", lambda a, o: ["data", "--set", "params={bogus: 1}", "--output", o], USAGE,
         "bogus"),
    Case("data-task-param-range", lambda a, o: ["data", "--set", "params={max_terms: -1}", "--output", o], USAGE,
         "max_terms"),
    Case("eval-template-choice", lambda a, o: ["eval", "--set", "template=chatty", "--output", o], USAGE, "template"),
    Case("eval-empty-model", lambda a, o: ["eval", "--model", "", "--output", o], USAGE, "model is empty"),
    Case("base-train-steps-for-smollm2", lambda a, o: ["base", "--preset", "smollm2-135m", "--set", "train_steps=5",
                                                       "--output", o], USAGE, "train_steps"),
    Case("rl-unknown-reward", lambda a, o: ["rl", "--model", a.base, "--set", "rewards=[{name: acuracy}]",
                                            "--output", o], USAGE, "acuracy"),
    Case("rl-unknown-reward-param", lambda a, o: ["rl", "--model", a.base, "--set",
                                                  "rewards=[{name: accuracy, params: {bogus: 1}}]", "--output", o],
         USAGE, "bogus"),
    Case("rl-batch-not-divisible", lambda a, o: ["rl", "--model", a.base, "--set", "per_device_train_batch_size=6",
                                                 "--set", "num_generations=4", "--output", o], USAGE, "divisible"),
    # RLConfig's own range checks (stages/rl_config.py), before any model loads
    Case("rl-learning-rate-negative", lambda a, o: ["rl", "--model", a.base, "--set", "learning_rate=-1", *RL_TINY,
                                                    "--output", o], USAGE, "learning_rate"),
    Case("rl-temperature-zero", lambda a, o: ["rl", "--model", a.base, "--set", "temperature=0", *RL_TINY,
                                              "--output", o], USAGE, "temperature"),
    Case("rl-beta-negative", lambda a, o: ["rl", "--model", a.base, "--set", "beta=-0.1", *RL_TINY, "--output", o],
         USAGE, "beta"),
    # ---- command-line usage
    Case("data-seed-not-int", lambda a, o: ["data", "--seed", "abc", "--output", o], USAGE, "--seed"),
    Case("compare-without-runs", lambda a, o: ["eval", "compare"], USAGE, "runs"),
    Case("rl-set-without-equals", lambda a, o: ["rl", "--set", "learning_rate", "--output", o], USAGE, "key=value"),
    Case("coldstart-unknown-option", lambda a, o: ["coldstart", "--lr", "1", "--output", o], USAGE, "--lr"),
    Case("merge-resume-and-overwrite", lambda a, o: ["merge", "--model", a.base, "--resume", "--overwrite",
                                                      "--output", o], USAGE, "exclude"),
    Case("eval-no-output", lambda a, o: ["eval", "--model", a.base, *M(a)], USAGE, "needs --output"),
    Case("data-output-is-a-file", lambda a, o: ["data", "--n", "2", "--output", a.txt], USAGE, "not a folder"),
    Case("data-output-under-a-file", lambda a, o: ["data", "--n", "2", "--output", a.txt / "sub"], USAGE, "output"),
    Case("data-output-cannot-be-created", lambda a, o: ["data", "--n", "2", "--output", "/proc/r1cli-test/out"],
         USAGE, "output"),
    Case("data-output-not-empty", lambda a, o: ["data", "--n", "2", "--output", a.plain_dir], USAGE, "not empty"),
    Case("coldstart-existing-run-without-overwrite",
         lambda a, o: ["coldstart", "--model", a.base, "--input", a.cs_run, "--output", a.model_run], USAGE,
         "not empty"),
    Case("eval-overwrite-refuses-foreign-folder",
         lambda a, o: ["eval", "--model", a.base, *M(a), "--overwrite", "--output", a.plain_dir], USAGE,
         "refuses to delete"),
    Case("eval-resume-other-stage", lambda a, o: ["eval", "--model", a.base, *M(a), "--resume",
                                                   "--output", a.data_run], USAGE, "r1 data"),
    Case("merge-without-model", lambda a, o: ["merge", "--output", o], USAGE, "needs the adapter"),
    Case("coldstart-without-input", lambda a, o: ["coldstart", "--model", a.base, "--output", o], USAGE,
         "needs training data"),
    # ---- missing model paths, folders without manifest, unfinished runs, wrong kinds
    Case("eval-model-missing", lambda a, o: ["eval", "--model", a.root / "no_such_model", *M(a), "--output", o],
         INPUT, "does not exist"),
    Case("coldstart-model-missing", lambda a, o: ["coldstart", "--model", a.root / "nope", "--input", a.cs_run,
                                                   "--output", o], INPUT, "does not exist"),
    Case("rl-model-missing", lambda a, o: ["rl", "--model", "./nope/model", "--input", a.data_run, "--output", o],
         INPUT, "does not exist"),
    Case("merge-model-missing", lambda a, o: ["merge", "--model", a.root / "nope", "--output", o], INPUT,
         "does not exist"),
    Case("coldstart-input-missing", lambda a, o: ["coldstart", "--model", a.base, "--input", a.root / "nope",
                                                   "--output", o], INPUT, "does not exist"),
    Case("rl-input-missing", lambda a, o: ["rl", "--model", a.base, "--input", a.root / "nope.jsonl",
                                           "--output", o], INPUT, "does not exist"),
    Case("coldstart-input-without-manifest", lambda a, o: ["coldstart", "--model", a.base, "--input", a.plain_dir,
                                                            "--output", o], INPUT, "neither an r1cli run"),
    Case("eval-model-without-manifest", lambda a, o: ["eval", "--model", a.plain_dir, *M(a), "--output", o], INPUT,
         "neither an r1cli run"),
    Case("eval-model-incomplete-run", lambda a, o: ["eval", "--model", a.incomplete_run, *M(a), "--output", o],
         INPUT, "no complete manifest"),
    Case("coldstart-input-running", lambda a, o: ["coldstart", "--model", a.base, "--input", a.running_run,
                                                   "--output", o], INPUT, "status 'running'"),
    Case("eval-model-is-a-dataset-run", lambda a, o: ["eval", "--model", a.data_run, *M(a), "--output", o], INPUT,
         "dataset artifact"),
    Case("coldstart-input-is-a-model-run", lambda a, o: ["coldstart", "--model", a.base, "--input", a.model_run,
                                                          "--output", o], INPUT, "model artifact"),
    Case("rl-input-is-a-model-folder", lambda a, o: ["rl", "--model", a.base, "--input", a.base, "--output", o],
         INPUT, "model folder"),
    # ---- empty datasets, missing columns, unreadable files
    Case("coldstart-empty-jsonl", lambda a, o: ["coldstart", "--model", a.base, "--input", a.empty_jsonl,
                                                 "--output", o], INPUT, "empty"),
    Case("coldstart-empty-dataset-folder", lambda a, o: ["coldstart", "--model", a.base, "--input", a.empty_ds,
                                                          "--output", o], INPUT, "is empty"),
    Case("rl-empty-jsonl", lambda a, o: ["rl", "--model", a.base, "--input", a.empty_jsonl, "--output", o], INPUT,
         "empty"),
    Case("coldstart-missing-columns", lambda a, o: ["coldstart", "--model", a.base, "--input", a.nocols,
                                                     "--output", o], INPUT, "needs columns"),
    Case("rl-missing-columns", lambda a, o: ["rl", "--model", a.base, "--input", a.nocols, "--output", o], INPUT,
         "column"),
    Case("rl-column-mapping-to-nothing", lambda a, o: ["rl", "--model", a.base, "--input", a.data_run, "--set",
                                                        "columns={prompt: question}", "--output", o], INPUT,
         "question"),
    Case("eval-benchmark-missing-columns", lambda a, o: ["eval", "--model", a.base, "--benchmark", a.nocols, *M(a),
                                                          "--output", o], INPUT, "nocols"),
    Case("eval-benchmark-file-missing", lambda a, o: ["eval", "--model", a.base, "--benchmark",
                                                       a.root / "gone.jsonl", *M(a), "--output", o], INPUT,
         "gone.jsonl"),
    Case("eval-benchmark-empty", lambda a, o: ["eval", "--model", a.base, "--benchmark", a.empty_jsonl, *M(a),
                                                "--output", o], INPUT, "empty"),
    Case("coldstart-malformed-jsonl", lambda a, o: ["coldstart", "--model", a.base, "--input", a.malformed_jsonl,
                                                     "--output", o], INPUT, "malformed.jsonl"),
    Case("coldstart-input-unsupported-file", lambda a, o: ["coldstart", "--model", a.base, "--input", a.txt,
                                                            "--output", o], INPUT, "rows.txt"),
    # ---- checkpoints of another architecture, unsafe or broken weights
    Case("eval-unknown-model-type", lambda a, o: ["eval", "--model", a.unknown_type, *M(a), "--output", o], INPUT,
         "unknown_type"),
    Case("coldstart-not-a-causal-lm", lambda a, o: ["coldstart", "--model", a.bert, "--input", a.cs_run,
                                                     "--output", o], INPUT, "not a causal language model"),
    Case("eval-mismatched-weights", lambda a, o: ["eval", "--model", a.mismatched, *M(a), "--output", o], INPUT,
         "mismatched"),
    Case("eval-bin-only-refused", lambda a, o: ["eval", "--model", a.bin_only, *M(a), "--output", o], INPUT,
         "safetensors"),
    Case("rl-bin-only-refused", lambda a, o: ["rl", "--model", a.bin_only, "--input", a.data_run, "--output", o],
         INPUT, "safetensors"),
    Case("eval-remote-code-refused", lambda a, o: ["eval", "--model", a.remote, *M(a), "--output", o], INPUT,
         "trust_remote_code"),
    Case("eval-corrupt-safetensors", lambda a, o: ["eval", "--model", a.corrupt_st, *M(a), "--output", o], INPUT,
         "corrupt_st"),
    Case("eval-config-not-json", lambda a, o: ["eval", "--model", a.bad_json, *M(a), "--output", o], INPUT,
         "bad_json"),
    Case("eval-no-tokenizer", lambda a, o: ["eval", "--model", a.no_tok, *M(a), "--output", o], INPUT, "no_tok"),
    Case("merge-model-is-a-dataset-run", lambda a, o: ["merge", "--model", a.data_run, "--output", o], INPUT,
         "dataset artifact"),
    Case("merge-not-an-adapter", lambda a, o: ["merge", "--model", a.base, "--output", o], INPUT,
         "not a PEFT adapter"),
    # ---- eval compare
    Case("compare-folder-without-results", lambda a, o: ["eval", "compare", a.plain_dir], INPUT, "no eval results"),
    Case("compare-corrupt-results", lambda a, o: ["eval", "compare", a.bad_results], INPUT, "not valid JSON"),
    Case("compare-missing-run", lambda a, o: ["eval", "compare", a.root / "no_run"], INPUT, "no eval results"),
]

# cases allowed to leave an output folder behind (none: `execute` removes a folder it created when the stage fails
# with a config or input error)
LEAVES_OUTPUT: set[str] = set()

# the cases run again with HF_HUB_OFFLINE=1: every stage's config errors, and each kind of bad input
OFFLINE_CASES = [
    "eval-malformed-yaml", "rl-recipe-missing", "data-unknown-yaml-key", "base-unknown-set-key", "eval-typo-key",
    "coldstart-unknown-yaml-key", "rl-unknown-key", "merge-unknown-key", "reject-sample-unknown-key",
    "align-unknown-key", "distill-unknown-key", "reward-model-unknown-key", "rl-4bit-without-peft",
    "rl-unknown-reward", "coldstart-unknown-option", "eval-no-output", "eval-model-missing",
    "rl-input-is-a-model-folder", "coldstart-missing-columns", "eval-unknown-model-type", "rl-bin-only-refused",
    "eval-remote-code-refused", "eval-no-tokenizer", "merge-not-an-adapter", "compare-corrupt-results",
]
CASE = {c.id: c for c in CASES}


def _check(a: SimpleNamespace, case: Case, r: Result, out: Path, changed: list[str]) -> None:
    assert r.code == case.code, f"{case.id}: exit {r.code}, expected {case.code}\n{r.stderr}"
    err = error_line(r)
    assert case.needle.lower() in err.lower(), f"{case.id}: {err!r} lacks {case.needle!r}"
    assert r.stdout == "", f"{case.id} printed on stdout: {r.stdout!r}"
    assert not changed, f"{case.id} touched existing files: {changed[:5]}"
    assert not a.pwned.exists(), "a checkpoint's own code ran without trust_remote_code"
    assert not r.net, f"{case.id} tried the network: {r.net[:3]}"
    if case.code == USAGE:
        # a config/usage error found before the stage starts creates nothing; one found by the stage itself may
        # leave the new output folder behind, but never a manifest that would pass it off as a finished run
        assert not out.exists() or case.id in LEAVES_OUTPUT, f"{case.id}: a config/usage error created {out}"
    assert not (out / "manifest.json").exists(), f"{case.id}: a failed run wrote a manifest"
    assert_only_error(r)  # last: a known leak (xfail raises=NoisyStderr) still gets every check above


def _selected(request, test_name: str) -> list[str]:
    """Case ids of `test_name` that this pytest run selected (so `-k` runs only those through the driver)."""
    return [item.callspec.params["case"] for item in request.session.items
            if getattr(item, "originalname", None) == test_name and item.module.__name__ == __name__]


def _drive(a: SimpleNamespace, root: Path, ids: list[str], offline: bool) -> dict[str, tuple[Result, Path, list]]:
    root.mkdir(parents=True, exist_ok=True)
    outs = {i: root / i / "out" for i in ids}
    for o in outs.values():
        o.parent.mkdir()
    runs = r1_driver([{"id": i, "argv": [str(x) for x in CASE[i].args(a, outs[i])]} for i in ids],
                     roots=[a.root, a.base], workdir=root, offline=offline)
    return {i: (Result(runs[i]["code"], runs[i]["stdout"], runs[i]["stderr"], runs[i]["net"]), outs[i],
                runs[i]["changed"]) for i in ids}


@pytest.fixture(scope="module")
def hub_online_runs(arts, tmp_path_factory, request):
    """Every selected case, HF_HUB_OFFLINE unset and the network fenced off, in one fresh driver process."""
    return _drive(arts, tmp_path_factory.mktemp("online"), _selected(request, "test_bad_input"), offline=False)


@pytest.fixture(scope="module")
def hub_offline_runs(arts, tmp_path_factory, request):
    """The OFFLINE_CASES again with HF_HUB_OFFLINE=1 (transformers/hub code paths differ)."""
    return _drive(arts, tmp_path_factory.mktemp("offline"), _selected(request, "test_bad_input_hub_offline"),
                  offline=True)


def test_at_least_40_bad_inputs():
    assert len([c for c in CASES if not c.xfail]) >= 40
    assert set(OFFLINE_CASES) <= set(CASE) and len(CASE) == len(CASES)


def _param(case_id: str):
    c = CASE[case_id]
    return pytest.param(case_id, id=case_id, marks=[pytest.mark.xfail(strict=True, raises=NoisyStderr, reason=c.xfail)]
                        if c.xfail else [])


@pytest.mark.slow
@pytest.mark.parametrize("case", [_param(c.id) for c in CASES])
def test_bad_input(arts, hub_online_runs, case):
    """Exactly one error line (and at most a hint) on stderr, the documented exit code, nothing on stdout, no
    network attempt, existing files untouched: HF_HUB_OFFLINE unset, the network unreachable."""
    _check(arts, CASE[case], *hub_online_runs[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", [_param(c) for c in OFFLINE_CASES])
def test_bad_input_hub_offline(arts, hub_offline_runs, case):
    _check(arts, CASE[case], *hub_offline_runs[case])


# light commands, and one that loads torch/transformers (each subprocess pays its imports: keep this list short)
SUBPROCESS_CASES = ["eval-malformed-yaml", "data-output-not-empty", "eval-remote-code-refused"]


@pytest.mark.slow
@pytest.mark.parametrize("case_id", [_param(c) for c in SUBPROCESS_CASES])
def test_bad_inputs_subprocess(arts, tmp_path, case_id):
    """The same contract through a real `r1` process of its own (the network fenced off)."""
    case = CASE[case_id]
    out = tmp_path / "out"
    before = tree_hash(arts.root, arts.base)
    r = r1_subprocess(*case.args(arts, out), env={"R1CLI_CACHE": str(arts.root / "cache")})
    after = tree_hash(arts.root, arts.base)
    _check(arts, case, r, out, sorted(k for k in before if after.get(k) != before[k]))
