"""r1cli.grpo.loss: hand-computed values, a naive per-sample loop reference, gradients, clipping, masks."""

from __future__ import annotations

import math
import statistics

import pytest

torch = pytest.importorskip("torch")

from r1cli.grpo.loss import (  # noqa: E402
    adaptive_entropy_coef,
    applied_entropy_coef,
    compute_advantages,
    compute_advantages_per_reward,
    grpo_loss,
    high_entropy_mask,
    importance_log_weights,
    kl_k3,
    off_policy_sequence_mask,
    rollout_correction,
    rollout_mismatch,
    vespo_weights,
    zero_variance_groups,
)

LN2 = math.log(2.0)


# ---------------------------------------------------------------- advantages


def test_advantages_hand_values():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    a = compute_advantages(r, 4, "group")
    # group 1: mean 0.5, sample std = sqrt(1/3); group 2: mean 2.75, std = 1.5
    s1 = math.sqrt(1 / 3)
    exp1 = [0.5 / (s1 + 1e-4), -0.5 / (s1 + 1e-4), -0.5 / (s1 + 1e-4), 0.5 / (s1 + 1e-4)]
    exp2 = [-0.75 / 1.5001, -0.75 / 1.5001, -0.75 / 1.5001, 2.25 / 1.5001]
    assert torch.allclose(a, torch.tensor(exp1 + exp2), atol=1e-6)
    none = compute_advantages(r, 4, "none")
    assert torch.allclose(none, torch.tensor([0.5, -0.5, -0.5, 0.5, -0.75, -0.75, -0.75, 2.25]))
    batch = compute_advantages(r, 4, "batch")
    std = statistics.stdev(r.tolist())
    assert torch.allclose(batch, none / (std + 1e-4), atol=1e-6)


def test_advantages_match_python_loop_on_random_rewards():
    g = torch.Generator().manual_seed(0)
    r = torch.randint(0, 3, (40,), generator=g).float() + torch.rand(40, generator=g).round()
    G = 8
    a = compute_advantages(r, G, "group")
    for k in range(0, 40, G):
        grp = r[k : k + G].tolist()
        m, s = statistics.fmean(grp), statistics.stdev(grp)
        for j in range(G):
            assert a[k + j].item() == pytest.approx((grp[j] - m) / (s + 1e-4), abs=1e-5)


def test_zero_variance_groups_give_zero_advantage_not_nan():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    for scale in ("group", "batch", "none"):
        a = compute_advantages(r, 4, scale)
        assert not torch.isnan(a).any()
        assert torch.all(a[:4] == 0)
    assert zero_variance_groups(r, 4).tolist() == [True, False]
    # all groups constant, batch scaling: std 0 across the batch too
    assert torch.all(compute_advantages(torch.ones(6), 3, "batch") == 0)
    # G = 1: no baseline, advantage 0
    assert torch.all(compute_advantages(torch.tensor([3.0, 1.0]), 1, "group") == 0)


def test_nan_rewards_are_left_out_of_the_baseline():
    r = torch.tensor([1.0, float("nan"), 0.0, 1.0])
    a = compute_advantages(r, 4, "group")
    assert a[1] == 0 and not torch.isnan(a).any()
    m, s = 2 / 3, statistics.stdev([1.0, 0.0, 1.0])
    assert a[0].item() == pytest.approx((1 - m) / (s + 1e-4), abs=1e-5)
    assert zero_variance_groups(
        torch.tensor([1.0, float("nan"), float("nan"), float("nan")]), 4
    ).tolist() == [True]
    assert torch.all(compute_advantages(torch.full((4,), float("nan")), 2) == 0)


def test_advantages_reject_bad_shapes():
    with pytest.raises(ValueError, match="groups of 3"):
        compute_advantages(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="scale_rewards"):
        compute_advantages(torch.zeros(4), 2, "std")  # type: ignore[arg-type]


# ---------------------------------------------------------------- hand-computed loss values


def _onpolicy_case():
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    adv = torch.tensor([1.0, -0.5])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    return logp, adv, mask


@pytest.mark.parametrize(
    "loss_type,kwargs,expected",
    [
        ("grpo", {}, (-1.0 + 0.5) / 2),  # row means -1 and 0.5, then the mean over completions
        ("bnpo", {}, (-2.0 + 1.5) / 5),  # token sum / 5 tokens
        ("dr_grpo", {"max_completion_length": 4}, (-2.0 + 1.5) / (2 * 4)),  # token sum / (B * L_max)
        ("dapo", {}, (-2.0 + 1.5) / 5),  # token sum / tokens of this batch
        ("dapo", {"num_items": 10}, (-2.0 + 1.5) / 10),  # token sum / global token count
    ],
)
def test_aggregations_hand_values(loss_type, kwargs, expected):
    logp, adv, mask = _onpolicy_case()
    loss, m = grpo_loss(logp, None, None, adv, mask, loss_type=loss_type, **kwargs)
    assert loss.item() == pytest.approx(expected, abs=1e-7)
    assert m["num_tokens"].item() == 5
    assert m["clip_ratio/region_mean"].item() == 0


def test_kl_term_hand_value():
    logp, adv, mask = _onpolicy_case()
    ref = logp.detach() + LN2  # π_ref / π = 2 on every token: k3 = 2 - ln 2 - 1
    k3 = 1 - LN2
    assert torch.allclose(kl_k3(logp.detach(), ref), torch.full((2, 3), k3))
    loss, m = grpo_loss(logp, None, ref, adv, mask, beta=0.1, loss_type="grpo")
    assert loss.item() == pytest.approx(-0.25 + 0.1 * k3, abs=1e-6)
    assert m["kl"].item() == pytest.approx(k3, abs=1e-6)
    # beta = 0 with a reference: KL is reported, not added
    loss0, m0 = grpo_loss(logp, None, ref, adv, mask, beta=0.0)
    assert loss0.item() == pytest.approx(-0.25) and "kl" in m0
    with pytest.raises(ValueError, match="ref_per_token_logps"):
        grpo_loss(logp, None, None, adv, mask, beta=0.1)


def test_clipping_hand_values_both_directions():
    # one token per completion; ratios chosen on each side of the clip range [0.8, 1.2]
    old = torch.zeros(4, 1)
    ratios = torch.tensor([[1.5], [0.5], [1.5], [0.5]])
    logp = ratios.log().clone().requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    mask = torch.ones(4, 1)
    loss, m = grpo_loss(logp, old, None, adv, mask, epsilon=0.2, loss_type="bnpo")
    # A>0, ρ=1.5: min(1.5, 1.2) = 1.2 (clipped high); A<0, ρ=0.5: min(-0.5, -0.8) = -0.8 (clipped low);
    # A<0, ρ=1.5: min(-1.5, -1.2) = -1.5 (unclipped); A>0, ρ=0.5: min(0.5, 0.8) = 0.5 (unclipped)
    assert loss.item() == pytest.approx(-(1.2 - 0.8 - 1.5 + 0.5) / 4, abs=1e-6)
    loss.backward()
    g = logp.grad.squeeze(1)
    assert g[0] == 0 and g[1] == 0  # clipped: no gradient, in both directions
    # unclipped: d(-ρA)/dlogρ / 4 = -ρA/4
    assert g[2].item() == pytest.approx(1.5 / 4) and g[3].item() == pytest.approx(-0.5 / 4)
    assert m["clip_ratio/high_mean"].item() == 0.25 and m["clip_ratio/low_mean"].item() == 0.25
    assert m["clip_ratio/region_mean"].item() == 0.5


def test_clip_higher_widens_only_the_upper_bound():
    old = torch.zeros(2, 1)
    logp = torch.tensor([[math.log(1.25)], [math.log(0.75)]], requires_grad=True)
    adv = torch.tensor([1.0, -1.0])
    loss, m = grpo_loss(
        logp, old, None, adv, torch.ones(2, 1), epsilon=0.2, epsilon_high=0.28, loss_type="bnpo"
    )
    # 1.25 < 1.28: not clipped; 0.75 < 0.8: clipped low
    assert loss.item() == pytest.approx(-(1.25 - 0.8) / 2, abs=1e-6)
    assert m["clip_ratio/high_mean"].item() == 0 and m["clip_ratio/low_mean"].item() == 0.5
    _, m2 = grpo_loss(logp, old, None, adv, torch.ones(2, 1), epsilon=0.2, loss_type="bnpo")
    assert m2["clip_ratio/high_mean"].item() == 0.5


# ---------------------------------------------------------------- naive reference on random inputs


def _naive(logp, old, ref, adv, mask, eps, eps_high, beta, loss_type, max_len, truncated=None):
    B, T = len(logp), len(logp[0])
    rows, tok_sum, n_tok = [], 0.0, 0
    for i in range(B):
        s, n = 0.0, 0
        for t in range(T):
            if not mask[i][t] or (truncated is not None and truncated[i]):
                continue
            rho = math.exp(logp[i][t] - old[i][t])
            sur = min(rho * adv[i], max(min(rho, 1 + eps_high), 1 - eps) * adv[i])
            d = ref[i][t] - logp[i][t]
            s += -sur + beta * (math.exp(d) - d - 1)
            n += 1
        rows.append(s / max(n, 1))
        tok_sum += s
        n_tok += n
    if loss_type == "grpo":
        return sum(rows) / B
    if loss_type in ("bnpo", "dapo"):
        return tok_sum / max(n_tok, 1)
    return tok_sum / (B * max_len)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_loop_on_random_inputs(loss_type, seed):
    g = torch.Generator().manual_seed(seed)
    B, T, G = 12, 9, 4
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    old = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3  # ratios well outside [0.8, 1.28]
    ref = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.5
    rewards = torch.randint(0, 2, (B,), generator=g).double()
    adv = compute_advantages(rewards, G).double()
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    truncated = torch.rand(B, generator=g) < 0.2
    kw = dict(epsilon=0.2, epsilon_high=0.28, beta=0.04, loss_type=loss_type, max_completion_length=T)
    loss, m = grpo_loss(logp, old, ref, adv, mask, truncated=truncated, **kw)
    want = _naive(
        logp.tolist(),
        old.tolist(),
        ref.tolist(),
        adv.tolist(),
        mask.tolist(),
        0.2,
        0.28,
        0.04,
        loss_type,
        T,
        truncated.tolist(),
    )
    assert loss.item() == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert 0 < m["clip_ratio/region_mean"].item() < 1  # the random ratios do hit the clip range


# ---------------------------------------------------------------- gradients


def test_onpolicy_gradient_is_advantage_times_score_function():
    g = torch.Generator().manual_seed(3)
    B, T = 6, 5
    logp = (-torch.rand(B, T, generator=g)).requires_grad_(True)
    adv = torch.randn(B, generator=g)
    lengths = torch.tensor([5, 3, 1, 4, 2, 5])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    loss, _ = grpo_loss(logp, None, None, adv, mask, loss_type="grpo")
    loss.backward()
    analytic = -adv[:, None] / lengths[:, None].float() / B * mask  # d/dlogp of -1/B Σ_i 1/|o_i| Σ_t A_i ρ_it
    assert torch.allclose(logp.grad, analytic, atol=1e-7)
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-6)  # ρ = 1 on-policy


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_autograd_matches_finite_differences(loss_type):
    g = torch.Generator().manual_seed(4)
    B, T = 4, 3
    logp = (-torch.rand(B, T, generator=g, dtype=torch.float64)).requires_grad_(True)
    old = (
        logp.detach() + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.05
    )  # stay off the clip kinks
    ref = logp.detach() + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    kw = dict(epsilon=0.2, beta=0.1, loss_type=loss_type, max_completion_length=T)
    loss, _ = grpo_loss(logp, old, ref, adv, mask, **kw)
    (grad,) = torch.autograd.grad(loss, logp)
    h = 1e-6
    fd = torch.zeros_like(grad)
    for i in range(B):
        for t in range(T):
            up, down = logp.detach().clone(), logp.detach().clone()
            up[i, t] += h
            down[i, t] -= h
            fd[i, t] = (
                grpo_loss(up, old, ref, adv, mask, **kw)[0] - grpo_loss(down, old, ref, adv, mask, **kw)[0]
            ) / (2 * h)
    assert torch.allclose(grad, fd, atol=1e-8)
    assert torch.all(grad[mask == 0] == 0)


# ---------------------------------------------------------------- masks


def test_padding_and_truncated_completions_do_not_count():
    g = torch.Generator().manual_seed(5)
    B, T = 4, 6
    logp = (-torch.rand(B, T, generator=g)).requires_grad_(True)
    old = logp.detach() + 0.01
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]] * 2 + [[1] * 6] * 2)
    base, _ = grpo_loss(logp, old, None, adv, mask, loss_type="bnpo")
    junk = logp.detach().clone()
    junk[mask == 0] = -50.0  # whatever sits in the padding must not matter
    again, _ = grpo_loss(junk, old, None, adv, mask, loss_type="bnpo")
    assert again.item() == pytest.approx(base.item(), abs=1e-7)

    truncated = torch.tensor([False, False, True, False])
    for lt in ("grpo", "bnpo", "dr_grpo", "dapo"):
        loss_t, m = grpo_loss(
            logp, old, None, adv, mask, truncated=truncated, loss_type=lt, max_completion_length=T
        )
        mask2 = mask.clone()
        mask2[2] = 0
        loss_m, _ = grpo_loss(logp, old, None, adv, mask2, loss_type=lt, max_completion_length=T)
        assert loss_t.item() == pytest.approx(loss_m.item(), abs=1e-7)
        assert m["num_tokens"].item() == 12
        (gt,) = torch.autograd.grad(loss_t, logp)
        assert torch.all(gt[2] == 0)
    # grpo keeps 1/G: the masked completion counts as a zero term
    rows = [(-(torch.exp(logp[i] - old[i]) * adv[i]) * mask[i]).sum() / mask[i].sum() for i in (0, 1, 3)]
    loss_g, _ = grpo_loss(logp, old, None, adv, mask, truncated=truncated, loss_type="grpo")
    assert loss_g.item() == pytest.approx(sum(r.item() for r in rows) / 4, abs=1e-6)


def test_entropy_metric_and_argument_checks():
    logp, adv, mask = _onpolicy_case()
    ent = torch.tensor([[1.0, 2.0, 99.0], [3.0, 3.0, 3.0]])
    _, m = grpo_loss(logp, None, None, adv, mask, entropies=ent)
    assert m["entropy"].item() == pytest.approx(12 / 5)
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo_loss(logp, None, None, adv, mask, loss_type="dr_grpo")
    with pytest.raises(ValueError, match="loss_type"):
        grpo_loss(logp, None, None, adv, mask, loss_type="ppo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="completion_mask"):
        grpo_loss(logp, None, None, adv, mask[:, :2])


def test_per_token_advantages_and_importance_weights():
    logp, adv, mask = _onpolicy_case()
    per_tok = adv[:, None].expand(2, 3)
    a, _ = grpo_loss(logp, None, None, adv, mask)
    b, _ = grpo_loss(logp, None, None, per_tok, mask)
    assert a.item() == pytest.approx(b.item())
    w = torch.full((2, 3), 0.5)
    c, _ = grpo_loss(logp, None, None, adv, mask, importance_weights=w)
    assert c.item() == pytest.approx(a.item() * 0.5)


# ---------------------------------------------------------------- options beyond the paper: hand values

LN = math.log


def test_gspo_sequence_weight_and_gspo_token_hand_values():
    old = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    logp = torch.tensor([[LN(2.0), 0.0, 9.9], [LN(0.5)] * 3], requires_grad=True)  # 9.9 sits in the padding
    lw = importance_log_weights(logp, old, mask.float(), "sequence")
    assert lw.shape == (2, 1)
    assert torch.allclose(lw.exp(), torch.tensor([[math.sqrt(2)], [0.5]]))
    adv = torch.tensor([1.0, -1.0])
    # ε = 0.2: √2 > 1.2 with A > 0 and 0.5 < 0.8 with A < 0: both completions clipped, no gradient
    loss, m = grpo_loss(logp, old, None, adv, mask, importance_sampling_level="sequence")
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2, abs=1e-6)
    assert torch.all(torch.autograd.grad(loss, logp)[0] == 0)
    assert m["clip_ratio/region_mean"].item() == 1.0
    # a wide range: unclipped; d/dℓ_t of -s_i A_i averaged = -s_i A_i / |o_i| / B on each real token
    want_grad = torch.tensor([[-math.sqrt(2) / 4, -math.sqrt(2) / 4, 0.0], [1 / 12, 1 / 12, 1 / 12]])
    for level in ("sequence", "sequence_token"):
        kw = dict(epsilon=0.9, epsilon_high=1.0, importance_sampling_level=level)
        loss, _ = grpo_loss(logp, old, None, adv, mask, **kw)
        assert loss.item() == pytest.approx((-math.sqrt(2) + 0.5) / 2, abs=1e-6), level
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.allclose(g, want_grad, atol=1e-6), level
    # per-token advantages: GSPO-token weighs each token's gradient by its own advantage
    per_tok = torch.tensor([[1.0, 2.0, 0.0], [-1.0, -1.0, -1.0]])
    loss, _ = grpo_loss(logp, old, None, per_tok, mask, epsilon=0.9, epsilon_high=1.0, importance_sampling_level="sequence_token")
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.allclose(g[0, :2], torch.tensor([-math.sqrt(2) / 4, -math.sqrt(2) / 2]), atol=1e-6)


def test_two_sided_clipping_hand_values():
    old = torch.zeros(2, 1)
    logp = torch.tensor([[LN(5.0)], [LN(2.0)]], requires_grad=True)
    adv = torch.tensor([-1.0, -1.0])
    loss, _ = grpo_loss(logp, old, None, adv, torch.ones(2, 1), loss_type="bnpo", delta=3.0)
    # -min(min(w, δ) A, clip(w) A): 5 is capped at 3 (no gradient), 2 stays (gradient -wA / 2 = 1)
    assert loss.item() == pytest.approx((3 + 2) / 2, abs=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    assert g[0].item() == 0 and g[1].item() == pytest.approx(1.0)
    without, _ = grpo_loss(logp, old, None, adv, torch.ones(2, 1), loss_type="bnpo")
    assert without.item() == pytest.approx((5 + 2) / 2, abs=1e-6)


def test_cispo_hand_values():
    old = torch.zeros(1, 2)
    logp = torch.tensor([[LN(6.0), LN(2.0)]], requires_grad=True)
    loss, m = grpo_loss(logp, old, None, torch.tensor([1.0]), torch.ones(1, 2), loss_type="cispo", epsilon_high=5.0)
    # -sg[min(w, 5)] A ℓ per token, token mean: the weight 6 is capped at 5 and both tokens keep a gradient
    assert loss.item() == pytest.approx((-5 * LN(6) - 2 * LN(2)) / 2, abs=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.allclose(g, torch.tensor([[-5 / 2, -2 / 2]]))
    assert m["cispo_clip_ratio"].item() == 0.5


def test_sapo_hand_values():
    logp = torch.full((2, 1), -1.0, requires_grad=True)
    adv = torch.tensor([1.0, -1.0])
    loss, _ = grpo_loss(logp, None, None, adv, torch.ones(2, 1), loss_type="sapo")
    # on-policy w = 1: -(4/τ) σ(0) A = -(2/τ) A with τ = 1 (A > 0) and 1.05 (A <= 0); gradient -A / B
    assert loss.item() == pytest.approx((-2.0 + 2 / 1.05) / 2, abs=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.allclose(g, torch.tensor([[-0.5], [0.5]]))
    # off-policy w = 2, A = 1: -4 σ(1), gradient -4 σ(1)(1 - σ(1)) w
    logp2 = torch.tensor([[LN(2.0)]], requires_grad=True)
    loss2, _ = grpo_loss(logp2, torch.zeros(1, 1), None, torch.tensor([1.0]), torch.ones(1, 1), loss_type="sapo")
    s = 1 / (1 + math.exp(-1))
    assert loss2.item() == pytest.approx(-4 * s, abs=1e-6)
    assert torch.autograd.grad(loss2, logp2)[0].item() == pytest.approx(-4 * s * (1 - s) * 2, abs=1e-6)


def test_luspo_sums_each_completion():
    logp, adv, mask = _onpolicy_case()
    for level in ("token", "sequence"):  # rows: 2 tokens × -1, 3 tokens × 0.5, then the mean over completions
        loss, _ = grpo_loss(logp, None, None, adv, mask, loss_type="luspo", importance_sampling_level=level)
        assert loss.item() == pytest.approx((-2.0 + 1.5) / 2, abs=1e-7)
    half, _ = grpo_loss(logp, None, None, adv, mask, loss_type="luspo", accumulation=2)
    assert half.item() == pytest.approx(-0.25 / 2, abs=1e-7)


def test_vespo_hand_values():
    old = torch.zeros(2, 2)
    logp = torch.tensor([[LN(2.0), 0.0], [LN(2.0), 0.0]], requires_grad=True)  # W = 2 in both rows
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 2)
    phi = vespo_weights(adv[:, None], logp.detach() - old, mask)
    # φ = e^λ W^k e^{-λW}: (k, λ) = (2, 3) for A >= 0, (3, 2) for A < 0
    want = torch.tensor([[math.exp(3) * 4 * math.exp(-6)], [math.exp(2) * 8 * math.exp(-4)]])
    assert torch.allclose(phi, want, rtol=1e-6)
    assert torch.allclose(vespo_weights(adv[:, None], torch.zeros(2, 2), mask), torch.ones(2, 1))  # φ(1) = 1
    # token-level rollout weights fold into W: c = (2, 1) doubles it
    phi_c = vespo_weights(adv[:, None], logp.detach() - old, mask, torch.tensor([[2.0, 1.0]] * 2))
    assert phi_c[0].item() == pytest.approx(math.exp(3) * 16 * math.exp(-12), rel=1e-6)
    loss, m = grpo_loss(logp, old, None, adv, mask, loss_type="vespo")
    # -sg[φ] A ℓ, token sum / 4 tokens
    p0, p1 = want[0].item(), want[1].item()
    assert loss.item() == pytest.approx((-p0 * LN(2) + p1 * LN(2)) / 4, rel=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.allclose(g, torch.tensor([[-p0 / 4] * 2, [p1 / 4] * 2]), rtol=1e-6)
    assert m["vespo/phi_seq_mean"].item() == pytest.approx((p0 + p1) / 2, rel=1e-6)


def test_high_entropy_mask_hand_values():
    ent = torch.tensor([[1.0, 2.0, 99.0], [3.0, 4.0, 5.0]])  # 99 is padding
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    # the 0.6-quantile of 1..5 (linear interpolation) is 3.4: tokens 4 and 5 stay
    keep = high_entropy_mask(ent, mask, 0.4)
    assert keep.tolist() == [[False, False, False], [False, True, True]]
    assert high_entropy_mask(ent, mask, 0.0).sum().item() == 1  # only the highest
    assert high_entropy_mask(ent, mask, 1.0).tolist() == mask.bool().tolist()
    assert high_entropy_mask(ent, mask, 0.5, pool=torch.tensor([10.0, 20.0])).sum().item() == 0
    logp, adv, _ = _onpolicy_case()
    loss, m = grpo_loss(logp, None, None, adv, mask, loss_type="bnpo", entropies=ent, top_entropy_quantile=0.4)
    # only row 1's last two tokens (A = -0.5) keep their policy term; bnpo still divides by all 5 tokens
    assert loss.item() == pytest.approx(2 * 0.5 / 5, abs=1e-7)
    assert m["entropy_mask/kept_share"].item() == pytest.approx(2 / 5)


def test_off_policy_sequence_mask_hand_values():
    adv = torch.tensor([[1.0], [-1.0], [-0.5], [-1.0]])
    logp = torch.zeros(4, 2)
    sampling = torch.tensor([[1.0, 1.0], [0.5, 0.7], [0.1, 0.1], [float("nan"), 1.2]])
    mask = torch.ones(4, 2)
    # mean drifts 1 (A > 0: kept), 0.6 > 0.5 (dropped), 0.1 (kept), NaN counts 0 -> 0.6 (dropped)
    keep = off_policy_sequence_mask(adv, logp, sampling, mask, 0.5)
    assert keep.squeeze(1).tolist() == [1.0, 0.0, 1.0, 0.0]
    lp = torch.full((4, 2), -1.0, requires_grad=True)
    s = sampling - 1.0  # the same drifts against ℓ = -1
    loss, m = grpo_loss(lp, None, None, adv, mask, off_policy_mask_threshold=0.5, sampling_per_token_logps=s)
    assert loss.item() == pytest.approx((-1.0 + 0.0 + 0.5 + 0.0) / 4, abs=1e-6)
    assert m["off_policy_mask/masked_share"].item() == 0.5
    # without sampler log-probs the drift is measured against π_old
    old = lp.detach() + torch.tensor([[0.0], [0.9], [0.0], [0.0]])
    _, m2 = grpo_loss(lp, old, None, adv, mask, off_policy_mask_threshold=0.5)
    assert m2["off_policy_mask/masked_share"].item() == 0.25


def test_rollout_correction_four_modes_hand_values():
    old = torch.tensor([[LN(2.0), LN(4.0)], [-LN(8.0), 7.0]])
    sampling = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    mask = torch.tensor([[1, 1], [1, 0]])  # [1, 1] is padding: weight 1 whatever the log-probs say

    def rc(mode, lo, hi):
        out = rollout_correction(old, sampling, mask, mode, lo, hi)
        assert out.shape == ((2, 2) if mode.startswith("token") else (2, 1))
        return out.flatten().tolist()

    assert rc("token_truncate", None, 3.0) == pytest.approx([2.0, 3.0, 0.125, 1.0])
    assert rc("token_truncate", 0.2, 3.0) == pytest.approx([2.0, 3.0, 0.2, 1.0])
    assert rc("token_mask", 0.2, 3.0) == pytest.approx([2.0, 0.0, 0.0, 1.0])
    assert rc("sequence_truncate", None, 3.0) == pytest.approx([3.0, 0.125])  # exp(ln 8) -> 3
    assert rc("sequence_mask", 0.2, 3.0) == [0.0, 0.0]
    assert rc("sequence_mask", 0.1, 10.0) == pytest.approx([8.0, 0.125])
    nan = sampling.clone()
    nan[0, 0] = float("nan")  # a token the sampler could not score: no correction
    assert rollout_correction(old, nan, mask, "token_truncate", None, 3.0)[0, 0].item() == 1.0
    with pytest.raises(ValueError, match="clip_min or clip_max"):
        rc("token_truncate", None, None)
    # the weights multiply the policy term only
    logp, adv, m = _onpolicy_case()
    w = torch.tensor([[2.0], [0.0]])
    loss, met = grpo_loss(logp, None, None, adv, m, importance_weights=w)
    assert loss.item() == pytest.approx(-2.0 / 2, abs=1e-7)
    assert met["rollout_weight/min"].item() == 0 and met["rollout_weight/max"].item() == 2


def test_rollout_mismatch_hand_values():
    train = torch.tensor([[LN(2.0), -LN(2.0)], [0.0, 5.0]])
    sampling = torch.tensor([[0.0, 0.0], [0.0, float("nan")]])
    m = rollout_mismatch(train, sampling, torch.ones(2, 2))  # d = ln 2, -ln 2, 0 (NaN left out)
    assert m["mismatch/kl"].item() == pytest.approx(((1 - LN(2)) + (LN(2) - 0.5) + 0) / 3, abs=1e-6)
    assert m["mismatch/abs_logp_diff_mean"].item() == pytest.approx(2 * LN(2) / 3, abs=1e-6)
    assert m["mismatch/abs_logp_diff_max"].item() == pytest.approx(LN(2), abs=1e-6)
    assert m["mismatch/ratio_min"].item() == pytest.approx(0.5) and m["mismatch/ratio_max"].item() == pytest.approx(2)


def test_bias_corrected_kl_hand_values():
    old = torch.zeros(1, 1)
    logp = torch.tensor([[LN(2.0)]], requires_grad=True)  # w = 2
    ref = logp.detach() + LN(2.0)  # d = ln 2: k3 = 1 - ln 2
    kw = dict(beta=1.0, loss_type="bnpo")
    zero = torch.tensor([0.0])  # A = 0: only the KL term
    plain, m = grpo_loss(logp, old, ref, zero, torch.ones(1, 1), **kw)
    assert plain.item() == pytest.approx(1 - LN(2), abs=1e-6) and m["kl"].item() == pytest.approx(1 - LN(2))
    assert torch.autograd.grad(plain, logp)[0].item() == pytest.approx(1 - 2.0)  # 1 - e^d
    corrected, m = grpo_loss(logp, old, ref, zero, torch.ones(1, 1), use_bias_correction_kl=True, **kw)
    # w k3, and d/dℓ (w k3) = w (k3 + 1 - e^d) = 2 (1 - ln 2 - 1) = -2 ln 2
    assert corrected.item() == pytest.approx(2 * (1 - LN(2)), abs=1e-6)
    assert torch.autograd.grad(corrected, logp)[0].item() == pytest.approx(-2 * LN(2), abs=1e-6)
    assert m["kl"].item() == pytest.approx(2 * (1 - LN(2)), abs=1e-6)


def test_entropy_bonus_hand_values():
    logp, adv, mask = _onpolicy_case()
    ent = torch.tensor([[1.0, 2.0, 99.0], [3.0, 3.0, 3.0]], requires_grad=True)
    loss, m = grpo_loss(logp, None, None, adv, mask, entropies=ent, entropy_coef=0.1, accumulation=2)
    # (policy - α H̄) / accumulation with H̄ = 12 / 5
    assert loss.item() == pytest.approx((-0.25 - 0.1 * 12 / 5) / 2, abs=1e-6)
    (g,) = torch.autograd.grad(loss, ent)
    assert torch.allclose(g, -0.1 / (2 * 5) * mask.float())
    assert m["policy_loss"].item() == pytest.approx(-0.25) and m["bonus_entropy"].item() == pytest.approx(2.4)
    # token-level losses carry the accumulation in num_items; the bonus is still divided by it
    loss_d, _ = grpo_loss(
        logp, None, None, adv, mask, loss_type="dapo", num_items=10, entropies=ent, entropy_coef=0.1, accumulation=2
    )
    assert loss_d.item() == pytest.approx((-2.0 + 1.5) / 10 - 0.1 * 2.4 / 2, abs=1e-6)
    # with the entropy mask the bonus is over the kept tokens only
    _, m2 = grpo_loss(logp, None, None, adv, mask, entropies=ent, entropy_coef=0.1, top_entropy_quantile=0.5)
    assert m2["bonus_tokens"].item() < 5


def test_adaptive_entropy_coefficient_rule():
    kw = dict(target=0.2, delta=0.01, coef_min=0.0, coef_max=0.055)
    assert adaptive_entropy_coef(0.05, 0.1, **kw) == pytest.approx(0.055)  # below target: up, capped
    assert adaptive_entropy_coef(0.05, 0.2, **kw) == pytest.approx(0.055)  # at the target counts as below
    assert adaptive_entropy_coef(0.05, 0.3, **kw) == pytest.approx(0.04)  # above: down
    assert adaptive_entropy_coef(0.005, 0.3, **kw) == 0.0  # floored
    assert applied_entropy_coef(0.05, math.inf, 0.2, adaptive=True) == 0.0  # no measurement yet
    assert applied_entropy_coef(0.05, 0.1, 0.2, adaptive=True) == 0.05
    assert applied_entropy_coef(0.05, 0.3, 0.2, adaptive=True) == 0.0
    assert applied_entropy_coef(0.05, 0.3, 0.2, adaptive=False) == 0.05


def test_gdpo_advantages_match_a_python_loop():
    nan = float("nan")
    r = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 3.0], [1.0, nan], [2.0, 4.0], [0.0, 1.0], [nan, nan], [5.0, 2.0]])
    w = [1.0, 0.5]
    got = compute_advantages_per_reward(r, torch.tensor(w), 4)
    rows = r.tolist()
    total = []
    for i, row in enumerate(rows):
        g0 = (i // 4) * 4
        s, scored = 0.0, False
        for k in range(2):
            if math.isnan(row[k]):
                continue
            vals = [rows[j][k] for j in range(g0, g0 + 4) if not math.isnan(rows[j][k])]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            s += w[k] * (row[k] - statistics.fmean(vals)) / (sd + 1e-4)
            scored = True
        total.append(s if scored else None)
    vals = [t for t in total if t is not None]
    m, sd = statistics.fmean(vals), statistics.stdev(vals)
    want = [0.0 if t is None else (t - m) / (sd + 1e-4) for t in total]
    assert got.tolist() == pytest.approx(want, abs=1e-5)
    assert got[6] == 0
    with pytest.raises(ValueError, match="weights"):
        compute_advantages_per_reward(r, torch.tensor([1.0]), 4)
