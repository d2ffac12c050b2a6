"""Soft-weighting baselines: SAPO's sigmoid gate and ASPO's asymmetric importance sampling."""

import torch

from trainer.policy_losses.base import Surrogate, TokenBatch, trust_region
from trainer.spec import PolicyLossConfig


def sapo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """SAPO (arXiv 2511.20347): surrogate f(r) = (4/τ)·σ(τ(r−1)), τ = τ_pos if A > 0 else τ_neg.

    Its gradient is 4σ(1−σ)·r·∇log π, so W = 4σ(1−σ)/π_old: 1/π_old at r = 1 and decaying
    smoothly on both sides. `ln`/`hp` report the tokens outside the PPO band (softly damped).
    """
    ratio = batch.ratio
    tau = torch.where(batch.positive, cfg.sapo_tau_pos, cfg.sapo_tau_neg).to(ratio.dtype)
    gate = torch.sigmoid(tau * (ratio - 1.0))
    ln, hp = trust_region(batch, cfg)
    return Surrogate(
        value=4.0 / tau * gate,
        coef=4.0 * gate * (1.0 - gate) * ratio,
        ln=ln,
        hp=hp,
        dual=torch.zeros_like(ln),
    )


def aspo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """ASPO (arXiv 2510.06062): flip the IS weight of positive-advantage tokens, soft dual clip.

    Weight ρ = r for A < 0 and the flipped ρ = π_old·π/sg(π²) (value 1/r) for A > 0, applied as
    ρ·∇log π. Tokens in PPO's LN/HP regions (judged on the original r) are dropped as in GRPO.
    Where ρ > c the soft dual clip caps the value at c and keeps the gradient with coefficient c
    (c·ρ/sg(ρ)) instead of zeroing it. W = π_old/π² for kept positive tokens, 1/π_old for kept
    negative ones, c/π under the dual clip.
    """
    ln, hp = trust_region(batch, cfg)
    weight = torch.where(batch.positive, -batch.log_ratio, batch.log_ratio).exp()
    dual = (batch.positive | batch.negative) & (weight > cfg.clip_ratio_c) & ~(ln | hp)
    clipped = torch.where(ln, 1.0 - cfg.clip_ratio_low, 1.0 / (1.0 + cfg.clip_ratio_high))
    capped = weight.clamp(max=cfg.clip_ratio_c)
    zero = torch.zeros_like(weight)
    return Surrogate(
        value=torch.where(ln | hp, clipped.to(weight.dtype), capped),
        coef=torch.where(ln | hp, zero, capped),
        ln=ln,
        hp=hp,
        dual=dual,
    )
