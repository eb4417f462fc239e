"""RL rollouts and `r1 eval` condition on the same tokens, stop at the same EOS, and hand the rewards the same text.

An earlier plain-TRL attempt saw step-0 rollout accuracy (~8%) disagree with a separate sampled eval (~14%). Here
both paths run on the tiny-test base: the `r1 rl` stage's dataset (`stages.rl.rollout_dataset`) through
`R1GRPOTrainer` (TRL's tokenisation, r1cli's sampler, TRL's decoding, the stage's reward functions), and the
`r1 eval` path (`EvalConfig.render`, `generation.generate`, `stages.eval.Grader`). Sampling at T -> 0 makes
both deterministic (argmax), so token ids and texts can be compared exactly; the distributions at T > 0 are
compared by measurement (`bench/rollout_vs_eval.py`).
"""

from __future__ import annotations

import pytest

from r1cli.config_loader import build
from r1cli.prompts import as_written, prefilled_think

G = 2


@pytest.mark.slow
def test_rollout_and_eval_see_identical_tokens_and_reward_inputs(tiny_base_path, tmp_path):
    import torch

    from r1cli.generation import _HFEngine, eos_token_ids, generate
    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.models import load_model
    from r1cli.rewards import build_rewards
    from r1cli.stages import eval as eval_stage
    from r1cli.stages.eval_config import EvalConfig
    from r1cli.stages.rl import rollout_dataset
    from r1cli.stages.rl_config import RLConfig
    from r1cli.tasks.benchmarks import load_benchmark

    bench = load_benchmark("arith", limit=12, seed=0)
    ev_cfg = build(
        EvalConfig,
        {"model": str(tiny_base_path), "benchmarks": ["arith"], "k": G, "temperature": 0.0, "top_p": 1.0},
    )
    ev_model, ev_tok = load_model(ev_cfg)
    ev_prompts = [ev_cfg.render(r["prompt"], builtin_task=bench.kind == "task", tokenizer=ev_tok) for r in bench.rows]
    # a completion budget that some rows fit (stop at EOS) and some do not (truncated): both cases compared
    natural = [s.n_tokens for per in generate(ev_model, ev_tok, ev_prompts, n=1, temperature=0.0, top_p=1.0,
                                              max_new_tokens=64, progress=False) for s in per]
    assert min(natural) < max(natural) <= 64, natural
    max_new = max(natural) - 1
    # --- the RL stage's path
    rl_cfg = build(
        RLConfig,
        {
            "model": str(tiny_base_path),
            "output": str(tmp_path / "rl"),
            "num_generations": G,
            "per_device_train_batch_size": G * len(bench.rows),
            "max_completion_length": max_new,
            "temperature": 1e-6,  # argmax in the limit: the sampler needs T > 0
            "top_p": 1.0,
            "max_steps": 1,
            "disable_tqdm": True,
        },
    )
    model, tok = load_model(rl_cfg, for_training=True)
    data = rollout_dataset(rl_cfg, bench.rows, True, tok)
    funcs, weights = build_rewards(rl_cfg.rewards)
    assert [f.__name__ for f in funcs] == ["accuracy", "format"]
    seen: dict[str, list] = {}

    def spy(fn):
        def wrapped(completions, **kw):
            seen.setdefault(fn.__name__, []).append((list(completions), list(kw["answer"])))
            return fn(completions, **kw)

        wrapped.__name__ = fn.__name__
        return wrapped

    trainer = R1GRPOTrainer(
        model=model,
        reward_funcs=[spy(f) for f in funcs],
        args=rl_cfg,
        train_dataset=data,
        processing_class=tok,
    )
    trainer.model.train()
    rows = [dict(data[i]) for i in range(len(data)) for _ in range(G)]
    out = trainer._generate_and_score_completions(rows)
    raw = trainer.last_scored.rewards_per_func  # [N, 2] accuracy, format

    # --- the eval stage's path: its own model and tokenizer load (above), its prompts, sampler and grader
    # 1. the same prompt text and the same prompt token ids
    assert list(data["prompt"]) == ev_prompts
    rl_prompt_ids = trainer._tokenize_prompts(ev_prompts)[0]
    engine = _HFEngine(ev_model, ev_tok, temperature=0.0, top_p=1.0, max_new_tokens=max_new, stop=[], seed=0)
    assert [list(x) for x in rl_prompt_ids] == [engine._encode(p) for p in ev_prompts]
    batch_prompt_ids = [
        out["prompt_ids"][i][out["prompt_mask"][i].bool()].tolist() for i in range(out["prompt_ids"].size(0))
    ]
    assert batch_prompt_ids == [engine._encode(p) for p in ev_prompts for _ in range(G)]
    # 2. the same stop tokens
    assert sorted(set(trainer.eos_token_ids)) == eos_token_ids(ev_model, ev_tok)

    # 3. the same completion token ids (EOS included, nothing after it) and finish reasons
    samples = generate(ev_model, ev_tok, ev_prompts, n=G, temperature=0.0, top_p=1.0, max_new_tokens=max_new,
                       progress=False)
    ev_ids = [s.token_ids for per in samples for s in per]
    rl_ids = [
        out["completion_ids"][i][out["completion_mask"][i].bool()].tolist()
        for i in range(out["completion_ids"].size(0))
    ]
    assert rl_ids == ev_ids
    eos = set(trainer.eos_token_ids)
    rl_reason = ["stop" if ids and ids[-1] in eos else "length" for ids in rl_ids]
    assert rl_reason == [s.finish_reason for per in samples for s in per]
    assert {"stop", "length"} == set(rl_reason), "want both finished and truncated rows in the comparison"

    # 4. the rewards see the same text and the same gold answers, and score it as eval grades it
    grader = eval_stage.Grader(bench)
    recs = [grader.record(i, row, ev_prompts[i], "k", samples[i]) for i, row in enumerate(bench.rows)]
    ev_texts = [as_written(prefilled_think(ev_prompts[i]), s.text) for i, per in enumerate(samples) for s in per]
    for name in ("accuracy", "format"):
        (texts, answers), = seen[name]
        assert texts == ev_texts
        assert answers == [r["answer"] for r in bench.rows for _ in range(G)]
    ev_correct = torch.tensor([float(s["correct"]) for r in recs for s in r["samples"]])
    ev_format = torch.tensor([s["format"] for r in recs for s in r["samples"]])
    assert torch.equal(raw[:, 0], ev_correct)
    assert torch.equal(raw[:, 1], ev_format)
    assert ev_format.sum() > 0  # the base writes the R1 tags: the comparison is not all zeros
