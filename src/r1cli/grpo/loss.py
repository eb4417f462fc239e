r"""GRPO maths in pure torch: advantages, every policy objective TRL 1.16 offers (and GSPO-token), the masks and
weights that modify it, the KL penalty, the entropy bonus, and the aggregations.

No TRL import: every function here takes tensors and returns tensors, so the objective can be read, tested and
reused on its own. `r1cli.grpo.trainer.R1GRPOTrainer` feeds TRL's rollouts through `grpo_loss`, which chains the
pieces in TRL's order: importance weight -> per-token policy loss -> masks and rollout weights -> KL -> aggregation
-> entropy bonus. The per-token terms (`per_token_policy_loss`, `kl_k3`) are separate from the aggregation
(`aggregate_loss`), as in open-instruct's `grpo_utils`.

The paper's objective (DeepSeek-R1, arXiv 2501.12948, eq. 1-3), for a question q and G outputs {o_i} sampled from
the old policy:

    J(θ) = E[ 1/G Σ_i ( min(ρ_i A_i, clip(ρ_i, 1-ε, 1+ε) A_i) - β D_KL(π_θ || π_ref) ) ],  ρ_i = π_θ(o_i|q) / π_old(o_i|q)  (1)
    D_KL(π_θ || π_ref) = π_ref(o_i|q)/π_θ(o_i|q) - log(π_ref(o_i|q)/π_θ(o_i|q)) - 1                                      (2)
    A_i = (r_i - mean(r_1..r_G)) / std(r_1..r_G)                                                                        (3)

What this module computes, and where it departs from those lines:

1. **Per token, as in DeepSeekMath (arXiv 2402.03300, eq. 3), which R1's GRPO comes from.** Eq. 1 writes the ratio
   and the KL for whole outputs; here ρ_{i,t} = π_θ(o_{i,t}|q, o_{i,<t}) / π_old(...) and the KL estimator of eq. 2
   are evaluated per token, the KL is added to each token's loss, and `loss_type="grpo"` averages over each
   completion's tokens and then over the completions: 1/G Σ_i 1/|o_i| Σ_t (...). This is the form every public
   implementation trains with (a sequence-level ratio of products of probabilities is numerically unusable).
2. **Sign.** J is maximised; the functions return the loss -J.
3. **Advantages.** `std` is the Bessel-corrected sample standard deviation (as `torch.std` and TRL), and 1e-4 is
   added to the denominator, so a group whose rewards are all equal gets A_i = 0 instead of 0/0. NaN rewards (every
   reward function returned None) are left out of the group's mean and std and get A_i = 0.
   `scale_rewards="batch"` divides by the std of the whole batch instead of the group's; `"none"` does not divide
   (Dr. GRPO, arXiv 2503.20783).
4. **Clip-higher.** `epsilon_high` (DAPO, arXiv 2503.14476) is the upper clip bound 1+ε_high; it defaults to ε,
   which is the paper.
5. **Aggregations other than the paper's.** `bnpo`: Σ over all tokens of the batch / number of tokens of the batch;
   `dr_grpo`: Σ over all tokens / (B × max_completion_length), a constant, so long wrong answers are not favoured;
   `dapo` (and `cispo`, `vespo`): Σ over all tokens / the number of tokens of the *whole generation batch*. A
   trainer that splits that batch over gradient-accumulation steps and processes passes that global count as
   `num_items` (TRL: `num_items_in_batch / num_processes × accumulation / steps_per_generation`); without it the
   count of this call's batch is used. `grpo` (and `sapo`), `bnpo`, `dr_grpo` and `luspo` are per-call means that
   `grpo_loss` divides by `accumulation`.
6. **Masks.** `completion_mask` removes padding (and tokens after EOS). `truncated` ([B] bool, DAPO's overlong
   filtering, TRL's `mask_truncated_completions`) removes whole completions that hit the length limit. Under `grpo`
   a fully masked completion still counts in the 1/G (it contributes 0), as in TRL.
7. **On-policy shortcut.** With `old_per_token_logps=None` (μ = 1: one gradient step per batch of rollouts),
   π_old is `per_token_logps.detach()`: ρ = 1 and the gradient is A ∇log π_θ, which is the paper's gradient at
   θ_old = θ.

Options beyond the paper, one block each (notation: ℓ_t = log π_θ(o_t), ℓ^old_t, ℓ^s_t = the sampler's log-prob,
M = the completion mask, sg = stop-gradient; TRL 1.16's `GRPOTrainer._compute_loss` computes the same numbers):

- **Importance-sampling level** (`importance_sampling_level`; GSPO, arXiv 2507.18071). `token`: w_{i,t} = ρ_{i,t}.
  `sequence` (GSPO): one weight per completion, the geometric mean of its token ratios,
      s_i = exp( 1/|o_i| Σ_t (ℓ_t - ℓ^old_t) ),   w_{i,t} = s_i   ([B, 1]).
  `sequence_token` (GSPO-token, the same paper; not in TRL): the value of s_i with a per-token gradient,
      w_{i,t} = sg[s_i] · exp(ℓ_t - sg[ℓ_t]),
  which equals GSPO in value and gradient when A is per completion and no per-token factor enters (entropy mask,
  token-level rollout weights, bias-corrected KL), and lets per-token advantages or masks act per token.
- **Clipped surrogate** (`grpo`, `bnpo`, `dr_grpo`, `dapo`, `luspo`): L_t = -min(w A, clip(w, 1-ε, 1+ε_high) A).
  **Two-sided clipping** (`delta`; INTELLECT-2, arXiv 2505.07291): the unclipped branch is capped too,
  L_t = -min(min(w, δ) A, clip(w, 1-ε, 1+ε_high) A), which bounds the loss of negative-advantage tokens whose
  ratio exploded.
- **CISPO** (`cispo`; MiniMax-M1, arXiv 2506.13585, ε_max of ScaleRL, arXiv 2510.13786): clip the weight, not the
  update, and keep every token's gradient: L_t = -sg[min(w, ε_high)] · A · ℓ_t (here ε_high is the cap ε_max
  itself, e.g. 5.0, not 1+ε_high).
- **SAPO** (`sapo`; arXiv 2511.20347): a soft gate instead of the clip, with τ = τ_pos if A > 0 else τ_neg:
  L_t = -(4/τ) σ(τ (w - 1)) A; its gradient is 4 σ(1-σ) w A ∇ℓ_t, equal to A ∇ℓ_t on-policy (w = 1) and decaying
  smoothly off-policy. Aggregated as `grpo`.
- **LUSPO** (`luspo`; arXiv 2602.05261): GSPO's clipped surrogate (use `importance_sampling_level: sequence`),
  aggregated as 1/B Σ_i Σ_t M L_t: each completion's loss scaled by its length, removing GSPO's length bias.
- **VESPO** (`vespo`; arXiv 2602.10693): a smooth Gamma-shaped weight of the *product* sequence ratio,
      W_i = exp(clamp(Σ_t M (ℓ_t - ℓ^old_t) [+ Σ_t log c_t], log 1e-8, 20)),   φ_i = e^λ W_i^k e^{-λ W_i}  (φ(1) = 1),
  (k, λ) = (k_pos, λ_pos) if A ≥ 0 else (k_neg, λ_neg), c_t the token-level rollout weights if given;
  L_t = -sg[φ_i] A ℓ_t, aggregated as `dapo`.
- **Off-policy sequence masking** (`off_policy_mask_threshold` δ_opsm; DeepSeek-V3.2, arXiv 2512.02556, eq. 9):
  drop a completion with A < 0 whose mean drift from the sampler is large,
      keep_i = [A_i ≥ 0] ∨ [ 1/|o_i| Σ_t M (ℓ^s_t - sg[ℓ_t]) ≤ δ_opsm ],   L_t ← keep_i L_t,
  ℓ^s = the sampler's log-probs when the batch has them (vLLM or r1's sampler), else π_old.
- **High-entropy token mask** (`top_entropy_quantile` ρ; Beyond the 80/20 Rule, arXiv 2506.01939): keep only
  the tokens whose entropy H_t is at least the (1-ρ)-quantile of the batch's (all processes) unmasked entropies:
  L_t ← [H_t ≥ q_{1-ρ}] L_t. The KL term is not masked.
- **Rollout weights** (TRL's `vllm_importance_sampling_*`, and r1's `sampler_importance_sampling_correction` for
  its own sampler): the sampler π_s is not exactly π_old (vLLM kernels, bf16, KV-cached decoding), so the
  surrogate is weighted by c = π_old/π_s, per token (`token_*`: c_t = exp(ℓ^old_t - ℓ^s_t)) or per completion
  (`sequence_*`: c_i = exp(Σ_t M (ℓ^old_t - ℓ^s_t))), then truncated (`*_truncate`: c ← clamp(c, C_min, C_max);
  truncated IS, Yao et al. 2025) or masked (`*_mask`: c ← c·[C_min ≤ c ≤ C_max]; masked IS, Liu et al. 2025):
  L_t ← c L_t (VESPO folds token-level c into W_i instead).
- **KL term** (`beta`): + β k3_t, k3_t = e^{ℓ^ref_t - ℓ_t} - (ℓ^ref_t - ℓ_t) - 1 (eq. 2). **Bias-corrected KL**
  (`use_bias_correction_kl`; DeepSeek-V3.2, arXiv 2512.02556): + β w_t k3_t with the importance weight w
  (with its gradient), so that the gradient is that of KL(π_θ || π_ref) under samples from π_old.
- **Entropy bonus** (`entropy_coef` α): loss ← loss - α H̄ / accumulation, H̄ = the mean entropy over the tokens
  the policy loss acts on (after the entropy mask), whatever the `loss_type`. **Adaptive** (`use_adaptive_entropy`;
  Skywork-OR1, arXiv 2505.22312): after each optimizer step, with H̄ measured over that step's tokens,
  α ← clamp(α + Δ, α_min, α_max) if H̄ ≤ H_target else clamp(α - Δ, α_min, α_max); the bonus is applied only while
  the last H̄ ≤ H_target.
- **Per-reward normalisation** (`multi_objective_aggregation: normalize_then_sum`; GDPO, arXiv 2601.05242):
  normalise each reward function within its group, sum with the weights, then normalise over the batch:
      ř_{i,k} = (r_{i,k} - mean_g(r_k)) / (std_g(r_k) + 1e-4),   R_i = Σ_k w_k ř_{i,k},   A_i = (R_i - mean(R)) / (std(R) + 1e-4).

Tensor shapes: B completions (G per prompt, groups contiguous), T = the longest completion in the batch.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]
ScaleRewards = Literal["group", "batch", "none"]
ImportanceSamplingLevel = Literal["token", "sequence", "sequence_token"]
RolloutCorrectionMode = Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]
MultiObjectiveAggregation = Literal["sum_then_normalize", "normalize_then_sum"]
LOSS_TYPES: tuple[str, ...] = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
# the clipped surrogate (and `delta`); the losses divided by the generation batch's token count (`num_items`)
CLIPPED_LOSSES: tuple[str, ...] = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")
GLOBAL_TOKEN_LOSSES: tuple[str, ...] = ("dapo", "cispo", "vespo")
SCALE_REWARDS: tuple[str, ...] = ("group", "batch", "none")
IMPORTANCE_SAMPLING_LEVELS: tuple[str, ...] = ("token", "sequence", "sequence_token")
ROLLOUT_CORRECTION_MODES: tuple[str, ...] = (
    "token_truncate",
    "token_mask",
    "sequence_truncate",
    "sequence_mask",
)
MULTI_OBJECTIVE_AGGREGATIONS: tuple[str, ...] = ("sum_then_normalize", "normalize_then_sum")
STD_EPS = 1e-4
_VESPO_LOG_MIN = math.log(1e-8)  # VESPO's clamp of log W (the reference implementation's)


def _nanstd(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """Bessel-corrected std ignoring NaN; 0 where fewer than two values are present."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    valid = ~torch.isnan(x)
    count = valid.sum(dim=dim, keepdim=True)
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    sq = torch.where(valid, (x - mean) ** 2, torch.zeros_like(x)).sum(dim=dim, keepdim=True)
    var = torch.where(count > 1, sq / (count - 1).clamp(min=1), torch.zeros_like(sq))
    std = var.sqrt()
    return std if keepdim else std.squeeze(dim)


def _as_2d(advantages: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    adv = advantages.to(dtype)
    return adv.unsqueeze(1) if adv.dim() == 1 else adv  # [B] -> [B, 1]; [B, T] stays


# ---------------------------------------------------------------- advantages


def total_rewards(rewards_per_func: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[N, F] reward of each completion under each function (NaN = the function does not apply) and [F] weights
    -> [N] weighted sum over the functions that apply; NaN where none does (an unscorable completion)."""
    w = weights.to(rewards_per_func.device)
    total = (rewards_per_func * w.unsqueeze(0)).nansum(dim=1)
    total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    return total


def compute_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale_rewards: ScaleRewards = "group",
    *,
    eps: float = STD_EPS,
) -> torch.Tensor:
    """Group-relative advantages, eq. 3: A_i = (r_i - mean_group(r)) / (std(r) + eps).

    Args:
        rewards: [B] total reward of each completion, B = n_groups × group_size, the G completions of one prompt
            contiguous. NaN marks an unscorable completion: left out of mean/std, advantage 0.
        group_size: G, completions per prompt.
        scale_rewards: "group" (the paper: the group's std), "batch" (the std of all B rewards) or "none"
            (Dr. GRPO: only subtract the group mean).
        eps: added to the std; makes zero-variance groups give A = 0 instead of NaN.

    Returns:
        [B] float advantages, never NaN.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}, got {scale_rewards!r}")
    r = rewards.float()
    grouped = r.view(-1, group_size)  # [n_groups, G]
    mean = torch.nanmean(grouped, dim=1, keepdim=True)  # all-NaN group -> NaN mean -> advantage 0 below
    adv = grouped - mean
    if scale_rewards == "group":
        adv = adv / (_nanstd(grouped, dim=1, keepdim=True) + eps)
    elif scale_rewards == "batch":
        adv = adv / (_nanstd(r) + eps)
    return torch.nan_to_num(adv.reshape(-1), nan=0.0)


def compute_advantages_per_reward(
    rewards_per_func: torch.Tensor,
    weights: torch.Tensor,
    group_size: int,
    *,
    eps: float = STD_EPS,
) -> torch.Tensor:
    """GDPO advantages (`multi_objective_aggregation: normalize_then_sum`): each reward function normalised within
    its group, the weighted sum normalised over the batch (see the module docstring). `scale_rewards` does not apply.

    Args:
        rewards_per_func: [B, F] reward of each completion under each of F functions; NaN where a function did not
            score a completion (left out of that function's group mean/std). A row that is all NaN gets A = 0.
        weights: [F] weight of each function.
        group_size: G, completions per prompt (groups contiguous).

    Returns:
        [B] float advantages, never NaN.
    """
    if rewards_per_func.dim() != 2:
        raise ValueError(f"rewards_per_func must be [B, F], got shape {tuple(rewards_per_func.shape)}")
    B, F = rewards_per_func.shape
    if weights.numel() != F:
        raise ValueError(f"{weights.numel()} weights for {F} reward functions")
    if group_size < 1 or B % group_size != 0:
        raise ValueError(f"{B} rewards do not split into groups of {group_size}")
    r = rewards_per_func.float()
    grouped = r.view(-1, group_size, F)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    normed = ((grouped - mean) / (_nanstd(grouped, dim=1, keepdim=True) + eps)).view(B, F)
    total = (normed * weights.to(r).unsqueeze(0)).nansum(dim=1)
    total[torch.isnan(r).all(dim=1)] = torch.nan
    adv = (total - torch.nanmean(total)) / (_nanstd(total) + eps)
    return torch.nan_to_num(adv, nan=0.0)


def zero_variance_groups(rewards: torch.Tensor, group_size: int, *, atol: float = 1e-6) -> torch.Tensor:
    """[n_groups] bool: groups whose (non-NaN) rewards are all equal, so every advantage is 0 and they carry no
    policy gradient (DAPO's dynamic sampling drops them). A group with fewer than two scorable rewards counts too."""
    grouped = rewards.float().view(-1, group_size)
    valid = ~torch.isnan(grouped)
    hi = torch.where(valid, grouped, torch.full_like(grouped, -torch.inf)).amax(dim=1)
    lo = torch.where(valid, grouped, torch.full_like(grouped, torch.inf)).amin(dim=1)
    return (valid.sum(dim=1) < 2) | ((hi - lo) <= atol)


# ---------------------------------------------------------------- per-token terms


def kl_k3(per_token_logps: torch.Tensor, ref_per_token_logps: torch.Tensor) -> torch.Tensor:
    """Eq. 2 per token: π_ref/π_θ - log(π_ref/π_θ) - 1 (Schulman's k3; >= 0, unbiased for KL(π_θ || π_ref)).

    [B, T] log-probs of the sampled tokens under π_θ and π_ref -> [B, T]."""
    d = ref_per_token_logps - per_token_logps
    return torch.exp(d) - d - 1


def importance_log_weights(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    level: ImportanceSamplingLevel = "token",
) -> torch.Tensor:
    """log w, the importance weight of each token: [B, T] log π_θ, log π_old and mask -> [B, T] for "token"
    (log ρ_t) and "sequence_token" (GSPO-token), [B, 1] for "sequence" (GSPO: the mean of log ρ over the
    completion's tokens)."""
    log_ratio = per_token_logps - old_per_token_logps
    if level == "token":
        return log_ratio
    if level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(
            f"importance_sampling_level must be one of {IMPORTANCE_SAMPLING_LEVELS}, got {level!r}"
        )
    seq = (log_ratio * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    if level == "sequence":
        return seq
    # GSPO-token: the value of the sequence weight, the gradient of each token's own log-prob
    return seq.detach() + per_token_logps - per_token_logps.detach()


@torch.no_grad()
def vespo_weights(
    advantages: torch.Tensor,
    log_ratio: torch.Tensor,
    mask: torch.Tensor,
    importance_weights: torch.Tensor | None = None,
    *,
    k_pos: float = 2.0,
    lambda_pos: float = 3.0,
    k_neg: float = 3.0,
    lambda_neg: float = 2.0,
) -> torch.Tensor:
    """VESPO's φ_i = e^λ W^k e^{-λ W} of the product sequence ratio W (module docstring), no gradient.

    Args:
        advantages: [B, 1] (or [B, T]) advantages; their sign picks (k, λ).
        log_ratio: [B, T] log π_θ - log π_old per token.
        mask: [B, T] completion mask.
        importance_weights: [B, T] token-level rollout weights π_old/π_sampler, folded into W; or None.

    Returns:
        [B, 1] φ (the advantages' shape when they are per token).
    """
    seq = (log_ratio.clamp(-20.0, 20.0) * mask).sum(-1, keepdim=True)
    if importance_weights is not None:
        if importance_weights.shape != mask.shape:
            raise ValueError("vespo takes token-level rollout weights only (a token_* correction mode)")
        seq = seq + (torch.log(importance_weights).clamp(_VESPO_LOG_MIN, 20.0) * mask).sum(-1, keepdim=True)
    log_w = seq.clamp(_VESPO_LOG_MIN, 20.0)
    nonneg = advantages >= 0
    k = torch.where(nonneg, k_pos, k_neg)
    lam = torch.where(nonneg, lambda_pos, lambda_neg).clamp(min=1e-4)
    phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
    return phi.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


class PolicyTerms(NamedTuple):
    """`per_token_policy_loss`'s result: `loss` [B, T] or [B, 1] (sequence-level weights), `weight` w with its
    gradient (before the `delta` cap), `phi` VESPO's φ ([B, 1]) or None."""

    loss: torch.Tensor
    weight: torch.Tensor
    phi: torch.Tensor | None


def per_token_policy_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: LossType = "grpo",
    importance_sampling_level: ImportanceSamplingLevel = "token",
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
    vespo_importance_weights: torch.Tensor | None = None,
) -> PolicyTerms:
    """The policy term of each token, before masks, rollout weights, KL and aggregation (module docstring, one
    block per `loss_type`).

    Args:
        per_token_logps: [B, T] log π_θ (with grad).
        old_per_token_logps: [B, T] log π_old (no grad).
        advantages: [B, 1] or [B, T].
        mask: [B, T] float completion mask (for the sequence-level weights).
        loss_type, importance_sampling_level, epsilon, epsilon_high, delta, sapo_*, vespo_*: see `grpo_loss`.
        vespo_importance_weights: [B, T] token-level rollout weights folded into VESPO's W.

    Returns:
        `PolicyTerms`.
    """
    eps_high = epsilon if epsilon_high is None else epsilon_high
    log_w = importance_log_weights(per_token_logps, old_per_token_logps, mask, importance_sampling_level)
    w = torch.exp(log_w)
    phi = None
    if loss_type in CLIPPED_LOSSES:
        clipped = torch.clamp(w, 1 - epsilon, 1 + eps_high)
        unclipped = w if delta is None else torch.clamp(w, max=delta)
        loss = -torch.min(unclipped * advantages, clipped * advantages)
    elif loss_type == "cispo":
        loss = -torch.clamp(w, max=eps_high).detach() * advantages * per_token_logps
    elif loss_type == "sapo":
        tau = torch.where(advantages > 0, sapo_temperature_pos, sapo_temperature_neg)
        loss = -(torch.sigmoid(tau * (w - 1)) * 4 / tau) * advantages
    elif loss_type == "vespo":
        phi = vespo_weights(
            advantages,
            per_token_logps.detach() - old_per_token_logps,
            mask,
            vespo_importance_weights,
            k_pos=vespo_k_pos,
            lambda_pos=vespo_lambda_pos,
            k_neg=vespo_k_neg,
            lambda_neg=vespo_lambda_neg,
        )
        loss = -phi * advantages * per_token_logps
    else:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    return PolicyTerms(loss, w, phi)


# ---------------------------------------------------------------- masks and rollout weights


@torch.no_grad()
def high_entropy_mask(
    entropies: torch.Tensor,
    mask: torch.Tensor,
    top_quantile: float,
    *,
    pool: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, T] bool: the tokens of `mask` whose entropy is at least the (1 - top_quantile)-quantile of `pool`.

    Args:
        entropies: [B, T] per-token entropy of π_θ.
        mask: [B, T] completion mask.
        top_quantile: ρ, the share of tokens kept (0 keeps the highest-entropy token(s) only).
        pool: 1-D entropies the quantile is taken over (a trainer passes all processes' unmasked tokens);
            default: `entropies[mask]`.
    """
    if pool is None:
        pool = entropies[mask.bool()]
    pool = pool.detach().float()
    if pool.numel() == 0:
        return torch.zeros_like(entropies, dtype=torch.bool)
    threshold = torch.quantile(pool, 1 - top_quantile)
    return ((entropies.detach() * mask) >= threshold) & mask.bool()


@torch.no_grad()
def off_policy_sequence_mask(
    advantages: torch.Tensor,
    per_token_logps: torch.Tensor,
    sampling_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
) -> torch.Tensor:
    """DeepSeek-V3.2's off-policy sequence mask: [B, 1] 1.0 = keep, 0.0 = drop (a completion with A < 0 whose mean
    log π_sampler - log π_θ over its tokens exceeds `threshold`). NaN sampler log-probs (vLLM could not score the
    token) count as no drift. Shapes: advantages [B, 1] (or [B, T]); the rest [B, T]."""
    drift = torch.nan_to_num(sampling_per_token_logps - per_token_logps.detach(), nan=0.0)
    mean_drift = (drift * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    return ((advantages >= 0) | (mean_drift <= threshold)).to(per_token_logps.dtype)


@torch.no_grad()
def rollout_correction(
    old_per_token_logps: torch.Tensor,
    sampling_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    mode: RolloutCorrectionMode = "sequence_mask",
    clip_min: float | None = None,
    clip_max: float | None = 3.0,
) -> torch.Tensor:
    """Rollout weights c = π_old/π_sampler for the sampler-vs-trainer mismatch (module docstring), TRL's four modes.

    Args:
        old_per_token_logps: [B, T] log π_old from the trainer's forward.
        sampling_per_token_logps: [B, T] log-probs the sampler reported (NaN: not scored, weight 1).
        mask: [B, T] completion mask.
        mode: token_truncate | token_mask | sequence_truncate | sequence_mask.
        clip_min, clip_max: C_min, C_max (None: no bound on that side).

    Returns:
        [B, T] (token_*) or [B, 1] (sequence_*) weights, no gradient.
    """
    if mode not in ROLLOUT_CORRECTION_MODES:
        raise ValueError(f"rollout correction mode must be one of {ROLLOUT_CORRECTION_MODES}, got {mode!r}")
    diff = torch.nan_to_num((old_per_token_logps - sampling_per_token_logps) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        if clip_min is None and clip_max is None:
            raise ValueError("a *_truncate rollout correction needs clip_min or clip_max")
        return torch.clamp(ratio, min=clip_min, max=clip_max)
    lo = -math.inf if clip_min is None else clip_min
    hi = math.inf if clip_max is None else clip_max
    return ratio.masked_fill((ratio < lo) | (ratio > hi), 0.0)


@torch.no_grad()
def rollout_mismatch(
    per_token_logps: torch.Tensor, sampling_per_token_logps: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """How far the sampler's log-probs are from the trainer's on the sampled tokens (d = log π_θ - log π_sampler,
    over the mask, NaN sampler values left out): `mismatch/kl` = mean(e^d - d - 1), an unbiased non-negative estimate
    of KL(π_sampler || π_θ) since the tokens were drawn from the sampler; `mismatch/abs_logp_diff_mean` and
    `_max` of |d|; `mismatch/ratio_min` and `_max` of e^d. [B, T] inputs -> scalars."""
    valid = mask.bool() & ~torch.isnan(sampling_per_token_logps)
    d = (per_token_logps.detach() - sampling_per_token_logps)[valid].float()
    if d.numel() == 0:
        d = d.new_zeros(1)
    return {
        "mismatch/kl": (torch.exp(d) - d - 1).mean(),
        "mismatch/abs_logp_diff_mean": d.abs().mean(),
        "mismatch/abs_logp_diff_max": d.abs().max(),
        "mismatch/ratio_min": torch.exp(d.min()),
        "mismatch/ratio_max": torch.exp(d.max()),
    }


# ---------------------------------------------------------------- aggregation and the entropy bonus


def aggregate_loss(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: LossType = "grpo",
    *,
    max_completion_length: int | None = None,
    num_items: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """[B, T] (or [B, 1], broadcast over the tokens) per-token loss and [B, T] mask -> the scalar loss of this call
    (module docstring, item 5): grpo/sapo: mean over each completion's tokens, then over completions; bnpo: mean over
    the batch's tokens; dr_grpo: token sum / (B × max_completion_length); dapo/cispo/vespo: token sum / `num_items`
    (default: this batch's token count); luspo: token sum per completion, mean over completions."""
    masked = per_token_loss * mask
    if loss_type in ("grpo", "sapo"):
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        if not max_completion_length:
            raise ValueError("loss_type 'dr_grpo' needs max_completion_length (its constant normaliser)")
        return masked.sum() / (masked.size(0) * max_completion_length)
    if loss_type in GLOBAL_TOKEN_LOSSES:
        denom = mask.sum() if num_items is None else torch.as_tensor(num_items, dtype=masked.dtype)
        return masked.sum() / denom.clamp(min=1.0)
    if loss_type == "luspo":
        return masked.sum(-1).mean()
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def entropy_bonus(entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """H̄: the mean per-token entropy over `mask` (with its gradient). [B, T], [B, T] -> scalar."""
    return (entropies * mask).sum() / mask.sum().clamp(min=1.0)


def applied_entropy_coef(coef: float, last_entropy: float, target: float, adaptive: bool) -> float:
    """The coefficient the bonus uses this step: `coef`, or with adaptive control `coef` only while the entropy
    measured at the previous optimizer step is <= `target` (0 before the first measurement, `last_entropy = inf`)."""
    if not adaptive:
        return coef
    return coef if last_entropy <= target else 0.0


def adaptive_entropy_coef(
    coef: float, entropy: float, *, target: float, delta: float, coef_min: float, coef_max: float
) -> float:
    """Skywork-OR1's update after an optimizer step whose mean token entropy was `entropy`: raise the coefficient by
    `delta` when the entropy is at or below `target`, else lower it, within [coef_min, coef_max]."""
    if entropy <= target:
        return min(coef + delta, coef_max)
    return max(coef - delta, coef_min)


# ---------------------------------------------------------------- the whole loss


def _extremes(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) of x over the masked tokens ([B, T]) or over the completions with a token ([B, 1])."""
    sel = x[mask.bool()] if x.shape == mask.shape else x.squeeze(-1)[mask.sum(-1) > 0]
    if sel.numel() == 0:
        sel = x.new_ones(1)
    return sel.min(), sel.max()


def grpo_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor | None,
    ref_per_token_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    loss_type: LossType = "grpo",
    max_completion_length: int | None = None,
    truncated: torch.Tensor | None = None,
    num_items: torch.Tensor | float | None = None,
    accumulation: float = 1.0,
    entropies: torch.Tensor | None = None,
    importance_weights: torch.Tensor | None = None,
    importance_sampling_level: ImportanceSamplingLevel = "token",
    delta: float | None = None,
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
    use_bias_correction_kl: bool = False,
    top_entropy_quantile: float = 1.0,
    entropy_pool: torch.Tensor | None = None,
    off_policy_mask_threshold: float | None = None,
    sampling_per_token_logps: torch.Tensor | None = None,
    entropy_coef: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO loss (-J of eq. 1, per token) with every option of the module docstring, in TRL's order.

    Args:
        per_token_logps: [B, T] log π_θ of each completion token (with grad).
        old_per_token_logps: [B, T] log π_old at sampling time, or None for μ = 1 (π_old = π_θ, detached).
        ref_per_token_logps: [B, T] log π_ref; may be None when beta == 0 (then no KL is computed).
        advantages: [B] (or [B, 1], or [B, T] per token) advantages from `compute_advantages`.
        completion_mask: [B, T] 1 for completion tokens that count, 0 for padding (and after EOS).
        epsilon: lower clip range, ratio >= 1 - epsilon.
        epsilon_high: upper clip range, ratio <= 1 + epsilon_high (DAPO clip-higher); None = epsilon. Under
            "cispo", the cap ε_max of the weight itself.
        beta: KL weight; 0 disables the KL term.
        loss_type: grpo | bnpo | dr_grpo | dapo | cispo | sapo | luspo | vespo.
        max_completion_length: the constant normaliser of "dr_grpo" (required there).
        truncated: [B] bool, completions that hit the length limit; their tokens are masked out.
        num_items: dapo/cispo/vespo: the token count to divide by (the global count of the generation batch when
            the trainer accumulates gradients); default: the masked tokens of this call.
        accumulation: gradient-accumulation steps this call is one of: the per-call means (grpo, bnpo, dr_grpo,
            sapo, luspo) and the entropy bonus are divided by it (dapo/cispo/vespo have it in `num_items`).
        entropies: [B, T] per-token entropy of π_θ (with grad for the bonus); needed by the entropy mask and bonus.
        importance_weights: [B, T] or [B, 1] rollout weights π_old/π_sampler (`rollout_correction`), multiplying
            the policy term (not the KL); under "vespo" folded into W (token-level only).
        importance_sampling_level: token | sequence (GSPO) | sequence_token (GSPO-token).
        delta: two-sided clipping cap of the unclipped ratio (clipped losses only); None = off.
        sapo_temperature_pos, sapo_temperature_neg: SAPO's τ for A > 0 and A <= 0.
        vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg: VESPO's (k, λ) for A >= 0 and A < 0.
        use_bias_correction_kl: multiply the per-token KL by the importance weight w (DeepSeek-V3.2).
        top_entropy_quantile: ρ < 1 keeps only the top-ρ entropy tokens in the policy term.
        entropy_pool: 1-D entropies the quantile is taken over (all processes'); default this call's.
        off_policy_mask_threshold: δ of the off-policy sequence mask; None = off.
        sampling_per_token_logps: [B, T] the sampler's log-probs, for the off-policy mask (default: π_old).
        entropy_coef: α of the entropy bonus (already gated by adaptive control); None = no bonus.

    Returns:
        (loss, metrics): the scalar loss to minimise, and detached scalars, means over the masked tokens (a
        completion-level value counts once per token): `clip_ratio/low_mean` (w < 1-ε and A < 0),
        `clip_ratio/high_mean` (w > 1+ε_high and A > 0), `clip_ratio/region_mean` (either) for the clipped losses;
        `cispo_clip_ratio` (w > ε_max and A > 0); `vespo/phi_seq_mean`; `kl` (the KL term as added, when a
        reference is given); `entropy`; `entropy_mask/kept_share`; `off_policy_mask/masked_share`;
        `rollout_weight/mean`, `_min`, `_max`; with a bonus `policy_loss` (before accumulation and bonus),
        `bonus_entropy` (H̄) and `bonus_tokens`; and `num_tokens`.
    """
    # loss_type and importance_sampling_level: RLConfig checks them; the dispatch below rejects any other value
    if per_token_logps.dim() != 2:
        raise ValueError(f"per_token_logps must be [B, T], got shape {tuple(per_token_logps.shape)}")
    if completion_mask.shape != per_token_logps.shape:
        raise ValueError(
            f"completion_mask {tuple(completion_mask.shape)} and per_token_logps {tuple(per_token_logps.shape)} differ"
        )
    if beta != 0.0 and ref_per_token_logps is None:
        raise ValueError("beta != 0 needs ref_per_token_logps (the reference model's log-probs)")
    if entropies is None and (top_entropy_quantile < 1.0 or entropy_coef is not None):
        raise ValueError("the entropy mask and the entropy bonus need entropies")
    eps_high = epsilon if epsilon_high is None else epsilon_high

    mask = completion_mask.to(per_token_logps.dtype)
    if truncated is not None:
        mask = mask * (~truncated.bool()).to(mask.dtype).unsqueeze(1)
    adv = _as_2d(advantages, per_token_logps.dtype)
    old = per_token_logps.detach() if old_per_token_logps is None else old_per_token_logps

    ent_mask = None
    if top_entropy_quantile < 1.0:
        assert entropies is not None
        ent_mask = high_entropy_mask(entropies, mask, top_entropy_quantile, pool=entropy_pool)
    keep = None
    if off_policy_mask_threshold is not None:
        drift_ref = old if sampling_per_token_logps is None else sampling_per_token_logps
        keep = off_policy_sequence_mask(adv, per_token_logps, drift_ref, mask, off_policy_mask_threshold)

    terms = per_token_policy_loss(
        per_token_logps,
        old,
        adv,
        mask,
        loss_type=loss_type,
        importance_sampling_level=importance_sampling_level,
        epsilon=epsilon,
        epsilon_high=epsilon_high,
        delta=delta,
        sapo_temperature_pos=sapo_temperature_pos,
        sapo_temperature_neg=sapo_temperature_neg,
        vespo_k_pos=vespo_k_pos,
        vespo_lambda_pos=vespo_lambda_pos,
        vespo_k_neg=vespo_k_neg,
        vespo_lambda_neg=vespo_lambda_neg,
        vespo_importance_weights=importance_weights if loss_type == "vespo" else None,
    )
    per_token_loss = terms.loss
    if keep is not None:
        per_token_loss = per_token_loss * keep
    if ent_mask is not None:
        per_token_loss = per_token_loss * ent_mask
    if importance_weights is not None and loss_type != "vespo":
        per_token_loss = per_token_loss * importance_weights
    kl = None
    if ref_per_token_logps is not None:
        kl = kl_k3(per_token_logps, ref_per_token_logps)
        if use_bias_correction_kl:
            kl = kl * terms.weight
        if beta != 0.0:
            per_token_loss = per_token_loss + beta * kl

    policy = aggregate_loss(
        per_token_loss, mask, loss_type, max_completion_length=max_completion_length, num_items=num_items
    )
    loss = policy if loss_type in GLOBAL_TOKEN_LOSSES else policy / accumulation
    bonus_mask = mask if ent_mask is None else mask * ent_mask
    if entropy_coef is not None:
        assert entropies is not None
        h = entropy_bonus(entropies, bonus_mask)
        loss = loss - entropy_coef * h / accumulation

    with torch.no_grad():
        n_tokens = mask.sum()

        def token_mean(x: torch.Tensor) -> torch.Tensor:
            return (x.to(mask.dtype) * mask).sum() / n_tokens.clamp(min=1.0)

        w = terms.weight.detach()
        metrics: dict[str, torch.Tensor] = {"num_tokens": n_tokens.detach()}
        if loss_type in CLIPPED_LOSSES:
            capped = w if delta is None else torch.clamp(w, max=delta)  # TRL counts the capped weight
            low = (capped < 1 - epsilon) & (adv < 0)
            high = (capped > 1 + eps_high) & (adv > 0)
            metrics["clip_ratio/low_mean"] = token_mean(low)
            metrics["clip_ratio/high_mean"] = token_mean(high)
            metrics["clip_ratio/region_mean"] = token_mean(low | high)
        elif loss_type == "cispo":
            metrics["cispo_clip_ratio"] = token_mean((w > eps_high) & (adv > 0))
        elif loss_type == "vespo":
            assert terms.phi is not None
            metrics["vespo/phi_seq_mean"] = token_mean(terms.phi)
        if kl is not None:
            metrics["kl"] = token_mean(kl)
        if entropies is not None:
            metrics["entropy"] = token_mean(entropies)
        if ent_mask is not None:
            metrics["entropy_mask/kept_share"] = token_mean(ent_mask)
        if keep is not None:
            metrics["off_policy_mask/masked_share"] = token_mean(1 - keep)
        if importance_weights is not None:
            metrics["rollout_weight/mean"] = token_mean(importance_weights)
            lo, hi = _extremes(importance_weights.to(mask.dtype), mask)
            metrics["rollout_weight/min"], metrics["rollout_weight/max"] = lo, hi
        if entropy_coef is not None:
            metrics["policy_loss"] = policy.detach()
            metrics["bonus_entropy"] = h.detach()
            metrics["bonus_tokens"] = bonus_mask.sum()
    return loss, metrics
