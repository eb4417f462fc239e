"""R1GRPOTrainer on a tiny random Qwen2: loss = grpo_loss = TRL's on the same tensors, reference model, stored old
log-probs (the sampling engine's; `tests/test_generation.py` tests the engine itself), dynamic sampling, and
RLConfig loading. One tokenizer and model family for the module."""

from __future__ import annotations

import copy
import string

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from r1cli.grpo.loss import (  # noqa: E402
    CLIPPED_LOSSES,
    LOSS_TYPES,
    compute_advantages,
    grpo_loss,
    zero_variance_groups,
)
from r1cli.grpo.trl_private import loss_options  # noqa: E402

G = 4


@pytest.fixture(scope="module")
def tok():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = list(string.digits + "+-=?<>/ \nabcdefghijklmnopqrstuvwxyzW")
    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    t = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))  # character-level
    t.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def _model(tok, seed=0, eos_bias=2.5):
    """A 2-layer Qwen2 whose LM head has a bias raising EOS, so completions end at varied lengths (as a trained
    model's do). A bias, not a forward override: TRL's fused scoring head reads the LM head's weight and bias."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(cfg)
    head = torch.nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[0] = eos_bias
    model.lm_head = head
    return model


@pytest.fixture(scope="module")
def dataset():
    from datasets import Dataset

    rows = [
        {"prompt": f"What is {a}+{b}?", "kind": "flat" if a % 3 == 0 else "varied"}
        for a, b in zip(range(40), range(40, 0, -1), strict=True)
    ]
    return Dataset.from_list(rows)


def length_reward(completions, kind, **kw):
    """Varies with the completion, except on 'flat' prompts where every completion gets 1 (zero variance)."""
    return [1.0 if k == "flat" else float(len(c) % 3) for c, k in zip(completions, kind, strict=True)]


def _args(tmp_path, **kw):
    from r1cli.stages.rl_config import RLConfig

    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4 * G,
        num_generations=G,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        rewards=["accuracy"],  # the spec the stage would build; the tests pass their own function
        logging_steps=1,
    )
    base.update(kw)
    return RLConfig(**base)


def _trainer(tok, dataset, tmp_path, model=None, **kw):
    from r1cli.grpo.trainer import R1GRPOTrainer

    return R1GRPOTrainer(
        model=model if model is not None else _model(tok),
        reward_funcs=length_reward,
        args=_args(tmp_path, **kw),
        train_dataset=dataset,
        processing_class=tok,
    )


def _batch(trainer, dataset, n_prompts=4):
    rows = [dict(dataset[i]) for i in range(n_prompts) for _ in range(G)]
    trainer.model.train()
    return trainer._generate_and_score_completions(rows)


def _forward_logps(model, batch, temperature=1.0):
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    C = batch["completion_ids"].size(1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -C - 1 : -1].float()
    return (
        torch.log_softmax(logits / temperature, -1).gather(-1, batch["completion_ids"][..., None]).squeeze(-1)
    )


# ------------------------------------------------------------------ TRL internals


def test_trl_internals_are_where_r1cli_expects_them(tok, dataset, tmp_path):
    """What `r1cli.grpo.trl_private` lists exists in the installed TRL; a failure means: re-check that module
    against the new TRL (and bump its TRL_CHECKED)."""
    import inspect

    import trl
    from packaging.version import Version
    from trl import GRPOTrainer

    from r1cli.grpo import trl_private

    assert Version(trl.__version__).release[:2] == Version(trl_private.TRL_CHECKED).release[:2]
    for name in trl_private.HOOKS:
        assert callable(getattr(GRPOTrainer, name, None)), name
    scoring_params = inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters
    assert set(trl_private.MULTIMODAL_KEYS) <= set(scoring_params)
    tr = _trainer(tok, dataset, tmp_path)
    for name in trl_private.ATTRIBUTES:
        assert hasattr(tr, name), name
    assert set(trl_private.grpo_loss_options(tr)) <= set(inspect.signature(grpo_loss).parameters)


# ------------------------------------------------------------------ length buckets


def test_plan_buckets_partitions_rows_and_cuts_padding():
    from r1cli.grpo.trainer import plan_buckets

    lengths = [10] * 8 + [40] * 8
    buckets = plan_buckets(lengths)
    assert sorted(i for b in buckets for i in b) == list(range(16))
    assert len(buckets) == 2 and {lengths[i] for i in buckets[0]} == {10}
    assert len(plan_buckets([12] * 16)) == 1  # nothing to gain: one forward


# ------------------------------------------------------------------ loss on identical inputs


def test_loss_equals_grpo_loss_and_trl_on_the_same_tensors(tok, dataset, tmp_path):
    from trl import GRPOTrainer

    from r1cli.grpo.scoring import plan_buckets, prefix_sharing_applies

    tr = _trainer(tok, dataset, tmp_path, beta=0.04, loss_type="grpo")
    tr.current_gradient_accumulation_steps = 1  # set by the training loop; outside it, by hand
    batch = _batch(tr, dataset)
    model = tr.model
    lp_ref = _forward_logps(model, batch)  # a plain forward, no buckets, no fused head
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    am = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    C = batch["completion_ids"].size(1)
    m = batch["completion_mask"].bool()
    lengths = (batch["prompt_mask"].sum(1) + batch["completion_mask"].sum(1)).tolist()
    assert len(plan_buckets(lengths)) > 1  # the bucketed path does split this batch
    _, ent_trl, _ = GRPOTrainer._get_per_token_logps_and_entropies(
        tr, model, ids, am, C, compute_entropy=True
    )
    for shared in (False, True):  # length buckets with TRL's fused head; the shared-prompt forward
        tr.scoring.share_prompt_prefix = shared
        assert prefix_sharing_applies(model, ids, C, tr.scoring, tr.accelerator) == shared
        lp, ent, _ = tr._get_per_token_logps_and_entropies(model, ids, am, C, compute_entropy=True)
        assert torch.allclose(lp[m], lp_ref[m], atol=1e-5), shared  # = one full forward
        assert torch.all(lp[~m] == 0) and torch.all(ent[~m] == 0)
        assert torch.allclose(ent[m], ent_trl[m], atol=1e-5), shared
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo"):
        tr.loss_type = loss_type
        ours = tr._compute_loss(model, batch)
        theirs = GRPOTrainer._compute_loss(tr, model, batch)  # TRL's own loss code on the same inputs
        want, _ = grpo_loss(
            lp_ref,
            batch.get("old_per_token_logps"),
            batch["ref_per_token_logps"],
            batch["advantages"],
            batch["completion_mask"],
            epsilon=0.2,
            beta=0.04,
            loss_type=loss_type,
            max_completion_length=12,
            num_items=batch["num_items_in_batch"] if loss_type == "dapo" else None,
        )
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-5, abs=1e-7), loss_type
        assert ours.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-6), loss_type
    # gradients: the shared-prompt forward and length buckets give TRL's (one padded forward, fused head)
    grads = []
    for shared, buckets in ((True, True), (False, True), (False, False)):
        tr.scoring.share_prompt_prefix, tr.scoring.length_buckets = shared, buckets
        model.zero_grad(set_to_none=True)
        tr._compute_loss(model, batch).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[2].norm() > 0
    assert torch.allclose(grads[0], grads[2], rtol=1e-4, atol=1e-7)
    assert torch.allclose(grads[1], grads[2], rtol=1e-4, atol=1e-7)
    # advantages are compute_advantages of the summed rewards, group by group
    rewards = tr.last_scored.rewards
    assert torch.allclose(batch["advantages"], compute_advantages(rewards, G, "group"))
    assert tr.ref_model is not None and not any(p.requires_grad for p in tr.ref_model.parameters())


def test_old_logprobs_are_the_samplers_when_iterating(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, tmp_path, num_iterations=2)
    batch = _batch(tr, dataset)
    assert "old_per_token_logps" in batch and "sampling_per_token_logps" in batch
    with torch.no_grad():
        fresh = _forward_logps(tr.model, batch)
    m = batch["completion_mask"].bool()
    assert torch.allclose(batch["old_per_token_logps"][m], fresh[m], atol=1e-4)
    tr.scoring.reuse_generation_logprobs = False  # TRL's own forward gives the same numbers
    batch2 = _batch(tr, dataset)
    with torch.no_grad():
        fresh2 = _forward_logps(tr.model, batch2)
    m2 = batch2["completion_mask"].bool()
    assert torch.allclose(batch2["old_per_token_logps"][m2], fresh2[m2], atol=1e-4)


# ------------------------------------------------------------------ every loss option against TRL's _compute_loss

def _loss_and_grad(fn, tr, batch):
    """One loss evaluation as a training micro-step: (loss, flat parameter gradient)."""
    tr.model.zero_grad(set_to_none=True)
    loss = fn(tr, tr.model, batch)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in tr.model.parameters() if p.grad is not None])
    return loss.detach(), grad


def _trl_vs_r1(tr, batch, trl_opts=None, **opts):
    """TRL's `GRPOTrainer._compute_loss` and R1GRPOTrainer's on the same trainer state and batch: relative
    differences of the loss and of the parameter gradient, and the metrics each logged."""
    from trl import GRPOTrainer

    from r1cli.grpo.trainer import R1GRPOTrainer

    opts.setdefault("_entropy_bonus_enabled", opts.get("entropy_coef", 0.0) != 0.0)
    out = []
    for fn, extra in ((GRPOTrainer._compute_loss, trl_opts or {}), (R1GRPOTrainer._compute_loss, {})):
        tr._metrics["train"].clear()
        with loss_options(tr, **{**opts, **extra}):
            loss, grad = _loss_and_grad(fn, tr, batch)
        out.append((loss, grad, {k: v[-1] for k, v in tr._metrics["train"].items()}))
    (l_t, g_t, m_t), (l_r, g_r, m_r) = out
    assert torch.isfinite(l_t) and g_t.norm() > 0
    rel_loss = (abs(l_r - l_t) / l_t.abs().clamp(min=1e-6)).item()
    rel_grad = ((g_r - g_t).norm() / g_t.norm()).item()
    return rel_loss, rel_grad, m_t, m_r


def _vllm_like_batch(tr, dataset, mode, clip_min, clip_max, seed):
    """A batch scored by TRL's vLLM path: r1's sampler stands in for vLLM, its log-probs moved by noise (the
    sampler-vs-trainer mismatch); TRL computes π_old by a forward and the rollout weights of `mode`."""
    g = torch.Generator().manual_seed(seed)
    generate = tr._generate

    def vllm_like(prompts):
        tr.use_vllm = False
        try:
            out = list(generate(prompts))
        finally:
            tr.use_vllm = True
        out[4] = [[x + 0.1 * torch.randn((), generator=g).item() for x in row] for row in out[4]]
        return tuple(out)

    tr._generate = vllm_like
    opts = dict(
        use_vllm=True,
        vllm_importance_sampling_correction=True,
        vllm_importance_sampling_mode=mode,
        vllm_importance_sampling_clip_min=clip_min,
        vllm_importance_sampling_clip_max=clip_max,
    )
    try:
        with loss_options(tr, **opts):
            batch = _batch(tr, dataset)
    finally:
        del tr._generate
    return batch


@pytest.fixture(scope="module")
def offpolicy(tok, dataset, tmp_path_factory):
    """A trainer (β = 0.04, 2 accumulation steps) and a batch as a vLLM run leaves it (sampler log-probs off the
    trainer's, π_old), after which the policy moved (as after an optimizer step) and the advantages were redrawn
    with both signs, so that every clip, mask and weight has something to act on."""
    tr = _trainer(tok, dataset, tmp_path_factory.mktemp("offpolicy"), beta=0.04)
    tr.current_gradient_accumulation_steps = 2
    batch = _vllm_like_batch(tr, dataset, "token_truncate", 0.8, 1.25, seed=1)
    del batch["importance_sampling_ratio"]  # no rollout correction here (the tests that want it turn it on)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in tr.model.parameters():
            p.add_(0.03 * torch.randn(p.shape, generator=g))
    batch["advantages"] = torch.randn(batch["advantages"].shape, generator=g)
    return tr, batch


def _opsm_threshold(tr, batch):
    """A median of the mean drifts (sampler - policy) of the negative-advantage completions: half are dropped."""
    with torch.no_grad():
        lp = _forward_logps(tr.model, batch)
    m = batch["completion_mask"].float()
    drift = ((batch["sampling_per_token_logps"] - lp) * m).sum(1) / m.sum(1).clamp(min=1)
    neg = drift[batch["advantages"] < 0].sort().values  # between two drifts: no ties to round
    return ((neg[len(neg) // 2 - 1] + neg[len(neg) // 2]) / 2).item()


def _case(loss_type, flags, tr, batch):
    opts = {"loss_type": loss_type, "epsilon_high": 5.0 if loss_type == "cispo" else 0.28}
    if flags == "all":  # every per-token mask and weight, the bias-corrected KL and the entropy bonus
        opts.update(
            top_entropy_quantile=0.5,
            off_policy_mask_threshold=_opsm_threshold(tr, batch),
            use_bias_correction_kl=True,
            entropy_coef=0.01,
        )
        if loss_type in CLIPPED_LOSSES:
            opts["delta"] = 1.3  # binds: a few negative-advantage tokens have ratios above it
    return opts


@pytest.mark.parametrize("flags", ["plain", "all"])
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_every_loss_option_equals_trl(offpolicy, loss_type, level, flags):
    tr, batch = offpolicy
    opts = _case(loss_type, flags, tr, batch)
    rel_loss, rel_grad, m_t, m_r = _trl_vs_r1(tr, batch, importance_sampling_level=level, **opts)
    assert rel_loss < 1e-5 and rel_grad < 1e-5, (rel_loss, rel_grad)
    if level == "token":  # TRL weights completion-level metrics per completion, r1 per token
        for k in ("kl", "entropy", "clip_ratio/region_mean", "cispo_clip_ratio"):
            if k in m_t:
                assert m_r[k] == pytest.approx(m_t[k], rel=1e-5, abs=1e-7), k
    if flags == "all":  # the options did act
        assert m_r["entropy_mask/kept_share"] == pytest.approx(0.5, abs=0.05)
        assert 0 < m_r["off_policy_mask/masked_share"] < 1
        assert "policy_loss" in m_r and "entropy_coef" in m_r
    if loss_type in CLIPPED_LOSSES and level == "token":  # (a completion's mean log-ratio rarely leaves the range)
        assert m_r["clip_ratio/region_mean"] > 0


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_gspo_token_equals_trl_gspo_with_sequence_advantages(offpolicy, loss_type):
    """GSPO-token is GSPO in value and gradient when each completion has one advantage and no per-token factor
    enters; the off-policy mask (per completion) and the entropy bonus keep it so."""
    tr, batch = offpolicy
    opts = _case(loss_type, "plain", tr, batch)
    opts.update(off_policy_mask_threshold=_opsm_threshold(tr, batch), entropy_coef=0.01)
    opts["importance_sampling_level"] = "sequence_token"
    trl_opts = {"importance_sampling_level": "sequence"}
    rel_loss, rel_grad, _, _ = _trl_vs_r1(tr, batch, trl_opts, **opts)
    assert rel_loss < 1e-5 and rel_grad < 1e-5, (rel_loss, rel_grad)


@pytest.mark.parametrize(
    "mode,clip_min,clip_max",
    [
        ("token_truncate", 0.9, 1.1),
        ("token_mask", 0.9, 1.1),
        ("sequence_truncate", None, 1.2),
        ("sequence_mask", 0.9, 1.1),
    ],
)
def test_rollout_correction_equals_trls_vllm_weights(offpolicy, dataset, mode, clip_min, clip_max):
    from r1cli.grpo.loss import rollout_correction

    tr, _ = offpolicy
    batch = _vllm_like_batch(tr, dataset, mode, clip_min, clip_max, seed=3)
    want = batch["importance_sampling_ratio"]  # TRL's, computed while scoring the batch
    m = batch["completion_mask"]
    got = rollout_correction(
        batch["old_per_token_logps"], batch["sampling_per_token_logps"], m, mode, clip_min, clip_max
    )
    assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-6, atol=1e-7)
    sel = got[m.bool()] if mode.startswith("token") else got
    assert ((sel > 0) & (sel != 1)).any()  # weights that act, and some cut by the bounds:
    assert (sel == 0).any() if mode.endswith("mask") else (sel == clip_max).any()
    # the loss with the weights: TRL multiplies its stored ones, r1 recomputes them from the log-probs
    batch["advantages"] = torch.randn(batch["advantages"].shape, generator=torch.Generator().manual_seed(4))
    correction = dict(
        use_vllm=True,
        vllm_importance_sampling_correction=True,
        vllm_importance_sampling_mode=mode,
        vllm_importance_sampling_clip_min=clip_min,
        vllm_importance_sampling_clip_max=clip_max,
    )
    for loss_type in ("grpo", "vespo" if mode.startswith("token") else "dapo"):
        rel_loss, rel_grad, _, m_r = _trl_vs_r1(tr, batch, loss_type=loss_type, **correction)
        assert rel_loss < 1e-5 and rel_grad < 1e-5, (loss_type, rel_loss, rel_grad)
        assert m_r["mismatch/abs_logp_diff_mean"] > 0.01  # the sampler noise shows in the metrics



def test_r1_sampler_mismatch_is_logged_and_corrected(tok, dataset, tmp_path):
    """r1's own sampler: its log-probs against the training forward are logged (mismatch/*); with
    sampler_importance_sampling_correction the policy term is weighted by π_old/π_sampler (π_old = this forward,
    μ = 1), here on sampler log-probs moved by noise as a bf16 sampler's would be."""
    from r1cli.grpo.loss import rollout_correction

    tr = _trainer(
        tok,
        dataset,
        tmp_path,
        sampler_importance_sampling_correction=True,
        vllm_importance_sampling_mode="token_mask",
        vllm_importance_sampling_clip_min=0.9,
        vllm_importance_sampling_clip_max=1.1,
    )
    tr.current_gradient_accumulation_steps = 1
    batch = _batch(tr, dataset)
    assert "old_per_token_logps" not in batch  # μ = 1: π_old is the gradient forward itself
    batch["advantages"] = torch.randn(batch["advantages"].shape, generator=torch.Generator().manual_seed(5))
    tr._compute_loss(tr.model, batch)
    metrics = {k: v[-1] for k, v in tr._metrics["train"].items()}
    # float32 KV-cached sampling vs one forward: the same distribution up to rounding
    assert 0 <= metrics["mismatch/kl"] < 1e-8 and metrics["mismatch/abs_logp_diff_max"] < 1e-4
    assert metrics["rollout_weight/mean"] == pytest.approx(1.0, abs=1e-4)
    noisy = dict(batch)
    g = torch.Generator().manual_seed(6)
    noisy["sampling_per_token_logps"] = batch["sampling_per_token_logps"] + 0.1 * torch.randn(
        batch["sampling_per_token_logps"].shape, generator=g
    )
    ours = tr._compute_loss(tr.model, noisy)
    assert tr._metrics["train"]["mismatch/abs_logp_diff_mean"][-1] > 0.05
    lp = _forward_logps(tr.model, batch).detach()
    m = batch["completion_mask"]
    w = rollout_correction(lp, noisy["sampling_per_token_logps"], m, "token_mask", 0.9, 1.1)
    assert ((w == 0) & m.bool()).any()  # some tokens are masked out
    want, _ = grpo_loss(lp, None, None, batch["advantages"], m, importance_weights=w, entropies=None)
    assert ours.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-6)
    plain, _ = grpo_loss(lp, None, None, batch["advantages"], m)
    assert abs(ours.item() - plain.item()) > 1e-3


def test_adaptive_entropy_controller_equals_trl(offpolicy):
    """Two micro-steps of one optimizer step: the bonus uses the coefficient of the previous step; at the step's
    end the coefficient moves by entropy_coef_delta towards the target, measured over both micro-steps."""
    from trl import GRPOTrainer

    from r1cli.grpo.trainer import R1GRPOTrainer

    tr, batch = offpolicy
    gs = tr.accelerator.gradient_state
    results = []
    opts = dict(
        entropy_coef=0.05,
        use_adaptive_entropy=True,
        _entropy_bonus_enabled=True,
        entropy_target=100.0,
        entropy_coef_delta=0.01,
    )
    for fn in (GRPOTrainer._compute_loss, R1GRPOTrainer._compute_loss):
        with loss_options(tr, **opts, _last_world_entropy=1.0, _entropy_window_stats=None):
            steps = []
            for sync in (False, True):
                gs._set_sync_gradients(sync)
                steps.append(_loss_and_grad(fn, tr, batch))
            results.append((steps, tr.entropy_coef, tr._last_world_entropy))
    gs._set_sync_gradients(True)
    (s_t, coef_t, h_t), (s_r, coef_r, h_r) = results
    assert coef_t == pytest.approx(0.06) and coef_r == pytest.approx(coef_t)
    assert h_r == pytest.approx(h_t, rel=1e-6)
    for (l_t, g_t), (l_r, g_r) in zip(s_t, s_r, strict=True):
        assert l_r.item() == pytest.approx(l_t.item(), rel=1e-5)
        assert ((g_r - g_t).norm() / g_t.norm()).item() < 1e-5


def test_gdpo_advantages_equal_trls(tok, dataset, tmp_path):
    """multi_objective_aggregation normalize_then_sum: r1's advantages are TRL's, including a reward function that
    returns None for some completions."""
    from r1cli.grpo.trainer import R1GRPOTrainer

    def digits(completions, kind, **kw):
        pairs = zip(completions, kind, strict=True)
        return [None if k == "flat" else float(sum(ch.isdigit() for ch in c)) for c, k in pairs]

    args = _args(
        tmp_path,
        multi_objective_aggregation="normalize_then_sum",
        rewards=[{"name": "accuracy"}, {"name": "format", "weight": 0.5}],
    )
    tr = R1GRPOTrainer(
        model=_model(tok),
        reward_funcs=[length_reward, digits],
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    seen = {}
    score_once = tr._score_once

    def spy(inputs):
        scored = score_once(inputs)
        seen["trl"] = scored.batch["advantages"].clone()  # TRL's, before r1 replaces them
        return scored

    tr._score_once = spy
    batch = _batch(tr, dataset)
    assert torch.allclose(batch["advantages"], seen["trl"], atol=1e-5)
    assert batch["advantages"].abs().max() > 0.1
    assert not torch.allclose(
        batch["advantages"], compute_advantages(tr.last_scored.rewards, G, "group"), atol=1e-2
    )


def test_a_few_training_steps_with_kl_and_two_iterations(tok, dataset, tmp_path):
    model = _model(tok)
    before = copy.deepcopy(model.state_dict())
    tr = _trainer(
        tok, dataset, tmp_path, model=model, beta=0.04, num_iterations=2, max_steps=3, loss_type="dapo"
    )
    out = tr.train()
    assert out.global_step == 3 and torch.isfinite(torch.tensor(out.training_loss))
    logs = [h for h in tr.state.log_history if "kl" in h]
    assert logs and all(h["kl"] >= 0 for h in logs)
    assert any("clip_ratio/region_mean" in h for h in tr.state.log_history)
    changed = any(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())
    assert changed
    # the reference stays the initial policy
    ref_sd = tr.ref_model.state_dict()
    assert all(torch.equal(before[k], ref_sd[k]) for k in before)


def test_peft_reference_is_the_adapter_disabled_base(tok, dataset, tmp_path):
    from peft import LoraConfig

    from r1cli.grpo.trainer import R1GRPOTrainer

    tr = R1GRPOTrainer(
        model=_model(tok),
        reward_funcs=length_reward,
        args=_args(tmp_path, beta=0.04),
        train_dataset=dataset,
        processing_class=tok,
        peft_config=LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        ),
    )
    assert tr.ref_model is None  # no second copy of the base
    batch = _batch(tr, dataset)
    with torch.no_grad(), tr.model.disable_adapter():
        base = _forward_logps(tr.model, batch)
    m = batch["completion_mask"].bool()
    assert torch.allclose(batch["ref_per_token_logps"][m], base[m], atol=1e-5)
    with torch.no_grad():
        adapted = _forward_logps(tr.model, batch)
    assert not torch.allclose(adapted[m], base[m], atol=1e-4)  # the adapter does change the policy
    # a model already wrapped by PEFT (as r1cli's loader returns it): a frozen adapter copy, not a second base
    from peft import get_peft_model

    wrapped = get_peft_model(_model(tok), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    tr2 = R1GRPOTrainer(
        model=wrapped,
        reward_funcs=length_reward,
        args=_args(tmp_path, beta=0.04),
        train_dataset=dataset,
        processing_class=tok,
    )
    assert tr2.ref_model is None and "ref" in tr2.model.peft_config


# ------------------------------------------------------------------ dynamic sampling


def test_dynamic_sampling_drops_and_refills_zero_variance_groups(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, tmp_path, dynamic_sampling=True, max_resample_tries=6)
    rows = [dict(dataset[i]) for i in (0, 1, 2, 3) for _ in range(G)]  # prompt 0 and 3 are 'flat'
    tr.model.train()
    batch = tr._generate_and_score_completions(rows)
    assert batch["completion_ids"].size(0) == 4 * G
    rewards = tr.last_scored.rewards
    flat = zero_variance_groups(rewards, G)
    m = tr._metrics["train"]
    assert m["dynamic_sampling/zero_std_share"][-1] >= 0.5
    assert m["dynamic_sampling/rounds"][-1] >= 1
    assert flat.sum().item() == round(m["dynamic_sampling/unfilled_share"][-1] * 4)
    assert torch.allclose(batch["advantages"], compute_advantages(rewards, G))
    assert torch.equal(tr.last_scored.rewards_per_func[:, 0], rewards)  # joined row for row with the totals
    assert batch["num_items_in_batch"].item() == batch["completion_mask"].sum().item()
    # the joined batch is consistent: every completion row lines up with its prompt row
    assert batch["prompt_ids"].size(0) == batch["completion_mask"].size(0) == batch["advantages"].numel()


def test_dynamic_sampling_without_tries_keeps_flat_groups_at_zero_advantage(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, tmp_path, dynamic_sampling=True, max_resample_tries=0)
    rows = [dict(dataset[i]) for i in (0, 3) for _ in range(G)]  # both 'flat'
    tr.model.train()
    batch = tr._generate_and_score_completions(rows)
    assert torch.all(batch["advantages"] == 0)
    assert tr._metrics["train"]["dynamic_sampling/unfilled_share"][-1] == 1.0


def test_refill_stream_is_seeded_and_resumes_from_its_position(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, tmp_path, dynamic_sampling=True)
    first = [r["prompt"] for r in tr.dynamic_sampler.draw(30, 1)]
    assert len(set(first)) == 30  # one permutation of the 40 prompts: no repeats within an epoch
    rest = [r["prompt"] for r in tr.dynamic_sampler.draw(15, 1)]  # crosses into the next epoch
    assert set(rest[:10]) == {r["prompt"] for r in dataset} - set(first)
    assert tr.dynamic_sampler.state() == {"epoch": 1, "position": 5}
    # what a checkpoint stores (epoch, position) is enough to continue the same stream
    other = _trainer(tok, dataset, tmp_path, dynamic_sampling=True)
    other.dynamic_sampler.load_state({"epoch": 1, "position": 5})
    assert [r["prompt"] for r in other.dynamic_sampler.draw(5, 1)] == [
        r["prompt"] for r in tr.dynamic_sampler.draw(5, 1)
    ]


# ------------------------------------------------------------------ config


def test_rlconfig_loads_with_precedence_and_rejects_unknown_keys(tmp_path):
    from r1cli.config_loader import dump_yaml, load_config, to_plain
    from r1cli.errors import ConfigError
    from r1cli.stages.rl_config import RLConfig

    recipe = tmp_path / "rl.yaml"
    recipe.write_text(
        "learning_rate: 3.0e-5\nnum_generations: 4\nper_device_train_batch_size: 16\n"
        "rewards:\n  - {name: accuracy}\n  - {name: format, weight: 0.5}\nloss_type: dapo\n"
    )
    c = load_config(RLConfig)
    assert (c.loss_type, c.scale_rewards, c.beta, c.gradient_checkpointing, c.bf16) == (
        "grpo",
        "group",
        0.0,
        False,
        False,
    )
    c = load_config(
        RLConfig, recipe, ["learning_rate=1e-5", "dynamic_sampling=true"], {"output": str(tmp_path / "r")}
    )
    assert (c.learning_rate, c.num_generations, c.loss_type, c.dynamic_sampling) == (1e-5, 4, "dapo", True)
    assert c.reward_weights == [1.0, 0.5] and c.output_dir == str(tmp_path / "r" / "trainer")
    # the config.yaml a run writes loads back to the same config
    again = tmp_path / "again.yaml"
    again.write_text(dump_yaml(c))
    c2 = load_config(RLConfig, again)
    assert to_plain(c2) == to_plain(c)
    for bad, msg in (
        (["nope=1"], "unknown config key"),
        (["loss_type=ppo"], "loss_type"),
        (["scale_rewards=yes"], "scale_rewards"),
        (["importance_sampling_level=seq"], "importance_sampling_level"),
        (["loss_type=cispo"], "epsilon_high"),
        (["rewards=[]"], "rewards is empty"),
        (["rewards=[{name: nope}]"], "unknown reward"),
        (["rewards=[{name: accuracy, scale: 2}]"], "expected keys"),
    ):
        with pytest.raises(ConfigError, match=msg):
            load_config(RLConfig, None, bad)



@pytest.mark.parametrize(
    "bad,msg",
    [
        (["loss_type=cispo", "epsilon_high=0.28"], "epsilon_high >= 1"),
        (["loss_type=sapo", "delta=4"], "unset delta"),
        (["delta=1.1"], "must exceed 1 \\+ epsilon_high"),
        (["loss_type=sapo", "sapo_temperature_neg=0"], "sapo_temperature"),
        (["vespo_lambda_pos=0"], "vespo_lambda_pos"),
        (["top_entropy_quantile=1.5"], "top_entropy_quantile"),
        (["use_adaptive_entropy=true", "entropy_coef=2"], "entropy_coef_min <= entropy_coef"),
        (["use_adaptive_entropy=true", "entropy_coef_delta=0"], "entropy_coef_delta"),
        (["off_policy_mask_threshold=0"], "off_policy_mask_threshold"),
        (["multi_objective_aggregation=normalize_then_sum", "dynamic_sampling=true"], "dynamic_sampling"),
        (["vllm_importance_sampling_mode=token"], "vllm_importance_sampling_mode"),
        (
            ["loss_type=vespo", "sampler_importance_sampling_correction=true"],
            "token_truncate or token_mask",
        ),
        (["sampler_importance_sampling_correction=true", "fast_generation=false"], "fast_generation: true"),
        (["sampler_importance_sampling_correction=true", "use_vllm=true"], "vllm_importance_sampling_correction"),
        (
            [
                "sampler_importance_sampling_correction=true",
                "vllm_importance_sampling_correction=false",  # (TRL's own check covers it otherwise)
                "vllm_importance_sampling_mode=token_truncate",
                "vllm_importance_sampling_clip_max=null",
            ],
            "clip_min or _clip_max",
        ),
    ],
)
def test_rlconfig_checks_every_loss_option(bad, msg):
    from r1cli.config_loader import load_config
    from r1cli.errors import ConfigError
    from r1cli.stages.rl_config import RLConfig

    with pytest.raises(ConfigError, match=msg):
        load_config(RLConfig, None, bad)


def test_rlconfig_takes_every_loss_option_together():
    from r1cli.config_loader import load_config
    from r1cli.stages.rl_config import RLConfig

    c = load_config(
        RLConfig,
        None,
        [
            "loss_type=luspo",
            "importance_sampling_level=sequence_token",
            "delta=4",
            "epsilon_high=0.28",
            "use_bias_correction_kl=true",
            "beta=0.01",
            "top_entropy_quantile=0.2",
            "entropy_coef=0.01",
            "use_adaptive_entropy=true",
            "off_policy_mask_threshold=0.5",
            "multi_objective_aggregation=normalize_then_sum",
            "sampler_importance_sampling_correction=true",
            "vllm_importance_sampling_mode=token_mask",
        ],
    )
    assert (c.loss_type, c.importance_sampling_level, c.delta) == ("luspo", "sequence_token", 4.0)


def test_sample_table_samples_jsonl_and_throughput_metrics(tok, dataset, tmp_path, capsys):
    import json

    tr = _trainer(
        tok, dataset, tmp_path, log_completions_every=2, max_steps=4, num_completions_to_print=2
    )
    tr.train()
    rows = [json.loads(x) for x in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    # every 2 steps: all 4×G rows of the latest generation batch, with their rewards and advantages
    assert sorted({r["step"] for r in rows}) == [2, 4]
    assert len(rows) == 2 * 4 * G
    for r in rows:
        assert set(r) >= {"prompt", "completion", "reward", "rewards", "advantage", "length"}
        assert r["rewards"]["length_reward"] == r["reward"]  # one reward function, weight 1
        assert "What is" in r["prompt"]
    step2 = [r for r in rows if r["step"] == 2]
    assert torch.allclose(
        torch.tensor([r["advantage"] for r in step2]),
        compute_advantages(torch.tensor([r["reward"] for r in step2]), G),
        atol=1e-5,
    )
    assert capsys.readouterr().err.count("sample completions, step") == 2
    logged = [h for h in tr.state.log_history if "loss" in h]
    assert len(logged) == 4
    for h in logged:
        assert h["tokens_per_s"] > 0 and h["completion_tokens_per_s"] > 0
        assert h["completion_tokens_per_s"] < h["tokens_per_s"]  # prompts count in the first only


def test_a_reward_returning_none_is_left_out_not_zero(tok, dataset, tmp_path):
    """TRL's semantic, which `r1 align` relies on: None = not judged. The total is the weighted nansum over the
    functions that judged a row; a row no function judged has reward NaN and advantage 0."""
    from r1cli.grpo.trainer import R1GRPOTrainer

    def judge_varied(completions, kind, **kw):  # judges only 'varied' prompts
        return [float(len(c) % 3) if k == "varied" else None for c, k in zip(completions, kind, strict=True)]

    def judge_some(completions, kind, prompts, **kw):  # judges only prompts with an even first operand
        return [
            0.5 if int(p.split()[2].split("+")[0]) % 2 == 0 else None
            for p in prompts
        ]

    tr = R1GRPOTrainer(
        model=_model(tok),
        reward_funcs=[judge_varied, judge_some],
        args=_args(tmp_path, reward_weights=None, rewards=[{"name": "accuracy"}, {"name": "format", "weight": 2.0}]),
        train_dataset=dataset,
        processing_class=tok,
    )
    assert tr.reward_weights.tolist() == [1.0, 2.0]
    # prompts 0 (flat, even), 1 (varied, odd), 2 (varied, even), 3 (flat, odd): judged by f2 / f1 / both / none
    rows = [dict(dataset[i]) for i in (0, 1, 2, 3) for _ in range(G)]
    tr.model.train()
    batch = tr._generate_and_score_completions(rows)
    raw, total = tr.last_scored.rewards_per_func, tr.last_scored.rewards
    assert torch.isnan(raw[:G, 0]).all() and torch.allclose(total[:G], torch.full((G,), 1.0))
    assert torch.isnan(raw[G : 2 * G, 1]).all() and torch.equal(total[G : 2 * G], raw[G : 2 * G, 0])
    assert torch.allclose(total[2 * G : 3 * G], raw[2 * G : 3 * G, 0] + 2 * 0.5)
    assert torch.isnan(total[3 * G :]).all()
    adv = batch["advantages"]
    assert torch.isfinite(adv).all() and torch.all(adv[3 * G :] == 0) and torch.all(adv[:G] == 0)
    assert torch.allclose(adv, compute_advantages(total, G))
    # the logged means skip the rows a function did not judge
    m = tr._metrics["train"]
    assert m["rewards/judge_some/mean"][-1] == pytest.approx(0.5)
