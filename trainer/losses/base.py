"""What every policy loss receives and returns.

A loss never touches autograd. It returns, per token and detached, the surrogate's forward
value and its derivative with respect to log π_θ (`coef`); `trainer.losses.registry` turns that into
`value + coef · (log π − sg(log π))`. This is the stop-gradient construction of the DGPO paper
applied uniformly: the gradient is exactly `coef · ∇log π`, i.e. the probability-gradient
weight is `W = coef / π`, and nothing differentiable passes through an `exp` that could
overflow (so no `0 · inf = NaN` in backward).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from trainer.spec import PolicyLossConfig

LOG_RATIO_LIMIT = 20.0
"""verl clamps log r to ±20 before `exp`; past it the clamp passes no gradient (`in_range`)."""
RAW_LOG_RATIO_LIMIT = 80.0
"""The unclamped log r that some official codes use (DGPO's LN/HP, CE-GPPO) is still bounded
here, far past anything a real policy produces (π_old < e^-80), so exp never overflows float32."""


@dataclass(frozen=True)
class TokenBatch:
    """Detached per-token inputs of a loss, [B, T]; masked positions hold neutral values."""

    log_prob: Tensor
    """log π_θ (0 where masked)."""
    log_ratio: Tensor
    """log(π_θ / π_old), clamped to ±LOG_RATIO_LIMIT as verl does (0 where masked)."""
    raw_log_ratio: Tensor
    """log(π_θ / π_old) unclamped (within ±RAW_LOG_RATIO_LIMIT; 0 where masked)."""
    advantages: Tensor
    """A (0 where masked)."""
    mask: Tensor
    """bool: the token is part of a response."""

    @property
    def ratio(self) -> Tensor:
        return self.log_ratio.exp()

    @property
    def in_range(self) -> Tensor:
        """Where verl's ±20 clamp passes the gradient (torch.clamp's bounds are inclusive)."""
        return self.raw_log_ratio.abs() <= LOG_RATIO_LIMIT

    @property
    def positive(self) -> Tensor:
        return self.advantages > 0

    @property
    def negative(self) -> Tensor:
        return self.advantages < 0


@dataclass(frozen=True)
class Surrogate:
    """A loss's answer, per token and detached ([B, T])."""

    value: Tensor
    """Forward value of the surrogate objective (the loss is −A · value)."""
    coef: Tensor
    """∂ value / ∂ log π_θ: the gradient is coef · ∇log π, so W = coef / π."""
    ln: Tensor
    """bool: the loss altered the plain IS gradient on the low-ratio side (LN if sign-aware)."""
    hp: Tensor
    """bool: the loss altered the plain IS gradient on the high-ratio side (HP)."""
    dual: Tensor
    """bool: a dual clip (hard or soft) applied."""


PolicyLossFn = Callable[[TokenBatch, PolicyLossConfig], Surrogate]


def token_batch(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, response_mask: Tensor
) -> TokenBatch:
    """Detach, mask and saturate the raw inputs once, for every loss."""
    if not log_prob.shape == old_log_prob.shape == advantages.shape == response_mask.shape:
        raise ValueError(
            "log_prob, old_log_prob, advantages and response_mask must share one [B, T] shape; got "
            f"{[tuple(t.shape) for t in (log_prob, old_log_prob, advantages, response_mask)]}"
        )
    mask = response_mask.bool()
    log_prob = log_prob.detach()
    zero = torch.zeros_like(log_prob)
    raw = (log_prob - old_log_prob.to(log_prob.dtype)).clamp(
        -RAW_LOG_RATIO_LIMIT, RAW_LOG_RATIO_LIMIT
    )
    raw = torch.where(mask, raw, zero)
    return TokenBatch(
        log_prob=torch.where(mask, log_prob, zero),
        log_ratio=raw.clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT),
        raw_log_ratio=raw,
        advantages=torch.where(mask, advantages.detach().to(log_prob.dtype), zero),
        mask=mask,
    )


def trust_region(batch: TokenBatch, cfg: PolicyLossConfig) -> tuple[Tensor, Tensor]:
    """PPO's clipped regions: LN (r < 1-ε_low, A < 0) and HP (r > 1+ε_high, A > 0)."""
    ratio = batch.ratio
    ln = batch.negative & (ratio < 1.0 - cfg.clip_ratio_low)
    hp = batch.positive & (ratio > 1.0 + cfg.clip_ratio_high)
    return ln, hp
