"""Sequence-level importance ratio: GSPO (arXiv 2507.18071)."""

import torch

from trainer.losses.base import Surrogate, TokenBatch
from trainer.spec import PolicyLossConfig

SEQ_LOG_RATIO_MAX = 10.0
"""verl clamps log s_i at 10 "for numerical stability"; the clamp passes no gradient past it."""


def gspo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """GSPO-token (§4.3 of the paper): s_i,t = sg(s_i)·π/sg(π), s_i = exp(mean_t log r).

    Clipping is PPO's, on the sequence ratio s_i and each token's A. The gradient per token is
    s_i·A·∇log π (W = s_i/π); with `loss_agg_mode: seq-mean-token-mean` and one advantage per
    sequence this is exactly GSPO's s_i·A·(1/|y|)·Σ_t ∇log π; the `gspo` recipe defaults to it
    and to the paper's ε = 3e-4 / 4e-4. Equal to verl's `compute_policy_loss_gspo`: the mean
    is over unclamped token log-ratios and log s_i is clamped at 10 (W = 0 past it). verl forces
    `seq-mean-token-mean` for GSPO; here it is only the default, so that losses compared in one
    study can share one aggregation.
    """
    lengths = batch.mask.sum(dim=-1, keepdim=True).clamp_min(1)
    seq_log_ratio = batch.raw_log_ratio.sum(dim=-1, keepdim=True) / lengths
    saturated = (seq_log_ratio > SEQ_LOG_RATIO_MAX).expand_as(batch.log_ratio)
    seq_ratio = seq_log_ratio.clamp(max=SEQ_LOG_RATIO_MAX).exp().expand_as(batch.log_ratio)
    ln = batch.negative & (seq_ratio < 1.0 - cfg.clip_ratio_low)
    hp = batch.positive & (seq_ratio > 1.0 + cfg.clip_ratio_high)
    value = torch.where(
        batch.negative,
        seq_ratio.clamp(min=1.0 - cfg.clip_ratio_low),
        seq_ratio.clamp(max=1.0 + cfg.clip_ratio_high),
    )
    coef = torch.where(ln | hp | saturated, torch.zeros_like(seq_ratio), seq_ratio)
    return Surrogate(value=value, coef=coef, ln=ln, hp=hp, dual=torch.zeros_like(ln))
