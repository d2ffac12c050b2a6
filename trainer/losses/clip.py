"""Clip-based baselines: PPO/GRPO hard clip with dual clip, gradient-preserving clips, CISPO.

W is the probability-gradient weight (gradient = A · W · ∇π); inside the trust region every
loss here has the plain importance-sampling weight W = 1/π_old.
"""

import torch

from trainer.losses.base import Surrogate, TokenBatch, trust_region
from trainer.spec import PolicyLossConfig


def grpo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """PPO clip with dual clip: min(r·A, clip(r)·A), floored at c·A when A < 0.

    PPO arXiv 1707.06347, GRPO arXiv 2402.03300, dual clip arXiv 1912.09729. Also the `dapo`
    preset (clip-higher, arXiv 2503.14476), whose ε_high = 0.28 comes from the spec.
    W = 1/π_old inside the region, 0 in LN, HP and where r > c with A < 0. Equal to verl's
    `compute_policy_loss_vanilla`, including its ±20 log-ratio clamp: past it W = 0.
    """
    ratio = batch.ratio
    ln, hp = trust_region(batch, cfg)
    dual = batch.negative & (ratio > cfg.clip_ratio_c)
    value = torch.where(
        batch.negative,
        ratio.clamp(1.0 - cfg.clip_ratio_low, cfg.clip_ratio_c),
        ratio.clamp(max=1.0 + cfg.clip_ratio_high),
    )
    zero = torch.zeros_like(ratio)
    coef = torch.where(ln | hp | dual | ~batch.in_range, zero, ratio)
    return Surrogate(value=value, coef=coef, ln=ln, hp=hp, dual=dual)


def gppo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """GPPO (Klear-Reasoner, arXiv 2508.07629): outside the region the value sits at the bound
    and the gradient coefficient is the bound, (1∓ε)·δ/sg(δ); dual clip at c for A < 0.

    W = (1-ε_low)/π in LN and (1+ε_high)/π in HP (unbounded as π → 0), 0 where A < 0 and
    r > c. The official code (Kwai-Klear/CE-GPPO `compute_gppo_loss_general_beta` with
    β1 = β2 = 1) does not clamp log r, nor does this (beyond the ±80 float32 guard of
    `RAW_LOG_RATIO_LIMIT`); its recipe has c = 10.
    """
    return _gradient_preserving(batch, cfg, beta_ln=1.0, beta_hp=1.0)


def ce_gppo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """CE-GPPO (arXiv 2509.20712): GPPO with the out-of-region gradient scaled by β1 on the
    LN side and β2 on the HP side: W = β1(1-ε_low)/π in LN, β2(1+ε_high)/π in HP, and the same
    dual clip as GPPO (value min(c, ·), W = 0 past it for A < 0).
    """
    return _gradient_preserving(batch, cfg, beta_ln=cfg.ce_gppo_beta1, beta_hp=cfg.ce_gppo_beta2)


def _gradient_preserving(
    batch: TokenBatch, cfg: PolicyLossConfig, *, beta_ln: float, beta_hp: float
) -> Surrogate:
    ratio = batch.raw_log_ratio.exp()
    ln, hp = trust_region(batch, cfg)
    low = torch.full_like(ratio, beta_ln * (1.0 - cfg.clip_ratio_low))
    high = torch.full_like(ratio, beta_hp * (1.0 + cfg.clip_ratio_high))
    kept = torch.where(ln, low, torch.where(hp, high, ratio))
    dual = batch.negative & (kept > cfg.clip_ratio_c)
    value = torch.where(dual, torch.full_like(ratio, cfg.clip_ratio_c), kept)
    coef = torch.where(dual, torch.zeros_like(ratio), kept)
    return Surrogate(value=value, coef=coef, ln=ln, hp=hp, dual=dual)


def cispo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """CISPO (MiniMax-M1, arXiv 2506.13585): sg(clip(r, 1-ε_low, 1+ε_high)) · A · log π.

    The IS weight is clipped whatever the sign of A and no token is dropped, so
    W = clip(r)/π: (1-ε_low)/π below the region, unbounded as π → 0. With ε_low ≥ 1 (the
    recipe's 10, as verl's example) there is no lower bound. Equal to verl's
    `compute_policy_loss_cispo` (ratio from the ±20-clamped log r).
    """
    ratio = batch.ratio
    weight = ratio.clamp(1.0 - cfg.clip_ratio_low, 1.0 + cfg.clip_ratio_high)
    ln = batch.mask & (ratio < 1.0 - cfg.clip_ratio_low)
    hp = batch.mask & (ratio > 1.0 + cfg.clip_ratio_high)
    return Surrogate(
        value=weight * batch.log_prob, coef=weight, ln=ln, hp=hp, dual=torch.zeros_like(ln)
    )
