"""Soft-weighting baselines: SAPO's sigmoid gate and ASPO's asymmetric importance sampling."""

import torch

from trainer.losses.base import Surrogate, TokenBatch, trust_region
from trainer.spec import PolicyLossConfig


def sapo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """SAPO (arXiv 2511.20347): surrogate f(r) = (4/τ)·σ(τ(r−1)), τ = τ_pos if A > 0 else τ_neg.

    Its gradient is 4σ(1−σ)·r·∇log π, so W = 4σ(1−σ)/π_old: 1/π_old at r = 1 and decaying
    smoothly on both sides. `ln`/`hp` report the tokens outside the PPO band (softly damped).
    Equal to verl's `compute_policy_loss_sapo`: τ in the compute dtype, r from the ±20-clamped
    log r (W = 0 past it), τ_neg for A ≤ 0. verl forces `seq-mean-token-mean` for SAPO; here it
    is the recipe's default and a spec may choose another aggregation.
    """
    ratio = batch.ratio
    tau_pos = torch.full_like(ratio, cfg.sapo_tau_pos)
    tau = torch.where(batch.positive, tau_pos, torch.full_like(ratio, cfg.sapo_tau_neg))
    gate = torch.sigmoid(tau * (ratio - 1.0))
    ln, hp = trust_region(batch, cfg)
    slope = torch.where(batch.in_range, ratio, torch.zeros_like(ratio))
    return Surrogate(
        value=4.0 / tau * gate,
        coef=4.0 * gate * (1.0 - gate) * slope,
        ln=ln,
        hp=hp,
        dual=torch.zeros_like(ln),
    )


def aspo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """ASPO (arXiv 2510.06062): flip the IS weight of positive-advantage tokens, soft dual clip.

    Weight ρ = r for A < 0 and the flipped ρ = π_old·π/sg(π²) (value 1/r) for A > 0, applied as
    ρ·∇log π. Tokens in PPO's LN/HP regions (judged on the original r) are dropped as in GRPO.
    Where ρ > c the soft dual clip replaces the term by sg(c)·log π (value c·log π, gradient
    coefficient c) instead of zeroing it. W = π_old/π² for kept positive tokens, 1/π_old for
    kept negative ones, c/π under the dual clip.

    Equal to Archer2.0's `compute_policy_loss_archer` with one ε pair for every token. We
    deliberately omit its entropy split (ε widened to 0.4 for each sequence's top-20%-entropy
    tokens): that is a separate token-selection idea, and would need entropy inside every loss.
    """
    ln, hp = trust_region(batch, cfg)
    weight = torch.where(batch.positive, -batch.log_ratio, batch.log_ratio).exp()
    dual = (batch.positive | batch.negative) & (weight > cfg.clip_ratio_c) & ~(ln | hp)
    low = torch.full_like(weight, 1.0 - cfg.clip_ratio_low)
    clipped = torch.where(ln, low, torch.full_like(weight, 1.0 / (1.0 + cfg.clip_ratio_high)))
    capped = weight.clamp(max=cfg.clip_ratio_c)
    kept = torch.where(dual, cfg.clip_ratio_c * batch.log_prob, capped)
    zero = torch.zeros_like(weight)
    return Surrogate(
        value=torch.where(ln | hp, clipped, kept),
        coef=torch.where(ln | hp, zero, capped),
        ln=ln,
        hp=hp,
        dual=dual,
    )
