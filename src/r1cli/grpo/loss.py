r"""GRPO maths in pure torch: group-relative advantages and the clipped surrogate with a KL penalty.

No TRL import: every function here takes tensors and returns tensors, so the objective can be read, tested and
reused on its own. `r1cli.grpo.trainer.R1GRPOTrainer` feeds TRL's rollouts through these functions.

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
   `dapo`: Σ over all tokens / the number of tokens of the *whole generation batch*. A trainer that splits that
   batch over gradient-accumulation steps and processes passes that global count as `num_items` and does not divide
   by the number of accumulation steps (TRL: `num_items_in_batch / num_processes × accumulation / steps_per_generation`);
   without `num_items` the count of this call's batch is used, which is token-level over what it was given.
   `grpo`, `bnpo` and `dr_grpo` are per-call means; a trainer divides them by the number of accumulation steps.
6. **Masks.** `completion_mask` removes padding (and tokens after EOS). `truncated` ([B] bool, DAPO's overlong
   filtering, TRL's `mask_truncated_completions`) removes whole completions that hit the length limit. Under `grpo`
   a fully masked completion still counts in the 1/G (it contributes 0), as in TRL.
7. **On-policy shortcut.** With `old_per_token_logps=None` (μ = 1: one gradient step per batch of rollouts),
   π_old is `per_token_logps.detach()`: ρ = 1 and the gradient is A ∇log π_θ, which is the paper's gradient at
   θ_old = θ.
8. **Optional per-token importance weights** multiply the surrogate (not the KL) when the sampler is not the
   trained model (vLLM: truncated importance sampling); unused on the default path.

Tensor shapes: B completions (G per prompt, groups contiguous), T = the longest completion in the batch.
"""

from __future__ import annotations

from typing import Literal

import torch

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
ScaleRewards = Literal["group", "batch", "none"]
LOSS_TYPES: tuple[str, ...] = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS: tuple[str, ...] = ("group", "batch", "none")
STD_EPS = 1e-4


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


def zero_variance_groups(rewards: torch.Tensor, group_size: int, *, atol: float = 1e-6) -> torch.Tensor:
    """[n_groups] bool: groups whose (non-NaN) rewards are all equal, so every advantage is 0 and they carry no
    policy gradient (DAPO's dynamic sampling drops them). A group with fewer than two scorable rewards counts too."""
    grouped = rewards.float().view(-1, group_size)
    valid = ~torch.isnan(grouped)
    hi = torch.where(valid, grouped, torch.full_like(grouped, -torch.inf)).amax(dim=1)
    lo = torch.where(valid, grouped, torch.full_like(grouped, torch.inf)).amin(dim=1)
    return (valid.sum(dim=1) < 2) | ((hi - lo) <= atol)


def kl_k3(per_token_logps: torch.Tensor, ref_per_token_logps: torch.Tensor) -> torch.Tensor:
    """Eq. 2 per token: π_ref/π_θ - log(π_ref/π_θ) - 1 (Schulman's k3; >= 0, unbiased for KL(π_θ || π_ref)).

    [B, T] log-probs of the sampled tokens under π_θ and π_ref -> [B, T]."""
    d = ref_per_token_logps - per_token_logps
    return torch.exp(d) - d - 1


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
    entropies: torch.Tensor | None = None,
    importance_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO loss (-J of eq. 1, per token; see the module docstring for each departure).

    Args:
        per_token_logps: [B, T] log π_θ of each completion token (with grad).
        old_per_token_logps: [B, T] log π_old at sampling time, or None for μ = 1 (π_old = π_θ, detached).
        ref_per_token_logps: [B, T] log π_ref; may be None when beta == 0 (then no KL is computed).
        advantages: [B] (or [B, 1], or [B, T] per token) advantages from `compute_advantages`.
        completion_mask: [B, T] 1 for completion tokens that count, 0 for padding (and after EOS).
        epsilon: lower clip range, ratio >= 1 - epsilon.
        epsilon_high: upper clip range, ratio <= 1 + epsilon_high (DAPO clip-higher); None = epsilon.
        beta: KL weight; 0 disables the KL term.
        loss_type: "grpo" (the paper), "bnpo", "dr_grpo" or "dapo" (see the module docstring).
        max_completion_length: the constant normaliser of "dr_grpo" (required there).
        truncated: [B] bool, completions that hit the length limit; their tokens are masked out.
        num_items: "dapo" only: the token count to divide by (the global count of the generation batch when the
            trainer accumulates gradients); default: the masked tokens of this call.
        entropies: [B, T] per-token entropy of π_θ, for the metrics only.
        importance_weights: [B, T] or [B, 1] weights on the surrogate (sampler ≠ trained model); default none.

    Returns:
        (loss, metrics): a scalar loss to minimise, and detached scalars: `clip_ratio/low_mean` (share of tokens
        with ratio < 1-ε and A < 0, where the clip stops the gradient), `clip_ratio/high_mean` (ratio > 1+ε_high and
        A > 0), `clip_ratio/region_mean` (either), `kl` (mean per-token eq. 2, when a reference is given),
        `entropy` (mean per-token entropy, when given), `num_tokens`. Means are over the masked tokens.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if per_token_logps.dim() != 2:
        raise ValueError(f"per_token_logps must be [B, T], got shape {tuple(per_token_logps.shape)}")
    if completion_mask.shape != per_token_logps.shape:
        raise ValueError(
            f"completion_mask {tuple(completion_mask.shape)} and per_token_logps {tuple(per_token_logps.shape)} differ"
        )
    if beta != 0.0 and ref_per_token_logps is None:
        raise ValueError("beta != 0 needs ref_per_token_logps (the reference model's log-probs)")
    if loss_type == "dr_grpo" and not max_completion_length:
        raise ValueError("loss_type 'dr_grpo' needs max_completion_length (its constant normaliser)")
    eps_low = epsilon
    eps_high = epsilon if epsilon_high is None else epsilon_high
    B = per_token_logps.size(0)

    mask = completion_mask.to(per_token_logps.dtype)
    if truncated is not None:
        mask = mask * (~truncated.bool()).to(mask.dtype).unsqueeze(1)
    adv = advantages.to(per_token_logps.dtype)
    if adv.dim() == 1:
        adv = adv.unsqueeze(1)  # [B, 1]

    old = per_token_logps.detach() if old_per_token_logps is None else old_per_token_logps
    ratio = torch.exp(per_token_logps - old)  # [B, T]
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    surrogate = torch.min(ratio * adv, clipped * adv)
    if importance_weights is not None:
        surrogate = surrogate * importance_weights
    per_token_loss = -surrogate
    kl = None
    if ref_per_token_logps is not None:
        kl = kl_k3(per_token_logps, ref_per_token_logps)
        if beta != 0.0:
            per_token_loss = per_token_loss + beta * kl

    masked = per_token_loss * mask
    n_tokens = mask.sum()
    if loss_type == "grpo":
        loss = (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = masked.sum() / n_tokens.clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = masked.sum() / (B * max_completion_length)
    else:  # dapo
        denom = n_tokens if num_items is None else torch.as_tensor(num_items, dtype=masked.dtype)
        loss = masked.sum() / denom.clamp(min=1.0)

    with torch.no_grad():

        def token_mean(x: torch.Tensor) -> torch.Tensor:
            return (x.to(mask.dtype) * mask).sum() / n_tokens.clamp(min=1.0)

        low = (ratio < 1 - eps_low) & (adv < 0)
        high = (ratio > 1 + eps_high) & (adv > 0)
        metrics = {
            "clip_ratio/low_mean": token_mean(low),
            "clip_ratio/high_mean": token_mean(high),
            "clip_ratio/region_mean": token_mean(low | high),
            "num_tokens": n_tokens.detach(),
        }
        if kl is not None:
            metrics["kl"] = token_mean(kl)
        if entropies is not None:
            metrics["entropy"] = token_mean(entropies)
    return loss, metrics
