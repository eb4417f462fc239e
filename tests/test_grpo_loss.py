"""r1cli.grpo.loss: hand-computed values, a naive per-sample loop reference, gradients, clipping, masks."""

from __future__ import annotations

import math
import statistics

import pytest

torch = pytest.importorskip("torch")

from r1cli.grpo.loss import compute_advantages, grpo_loss, kl_k3, zero_variance_groups  # noqa: E402

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
