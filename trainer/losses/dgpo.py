"""DGPO: bilateral decoupled decay of the probability-gradient weight (arXiv 2603.14389).

The gradient is A · W · ∇π with
- LN (r < 1-ε_low, A < 0): W = π^n / (π_old^(n+1) (1-ε_low)^n)  → 0 as π → 0;
- HP (r > 1+ε_high, A > 0): W = (1+ε_high)^(1/m) π^(-1/m) π_old^(-(m-1)/m);
- elsewhere: W = 1/π_old, i.e. exactly GRPO inside the trust region; no dual clip.
W is continuous at both bounds. In log space the per-token surrogate (and, since its
log-derivative equals itself, its gradient coefficient) is exp(s) with
s = (n+1)·log r − n·log(1-ε_low) in LN, ((m-1)/m)·log r + log(1+ε_high)/m in HP, log r else;
this is the paper's exp(logp + n·sg(logp) − (n+1)·logp_old)/(1-ε_low)^n written per region.

Equal to the official code (VenomRose-Juri/DGPO-RL `compute_policy_loss`, ratio_mode "dgpo")
in every region: LN and HP use the unclamped log r (as it does, through log_prob), while
inside the region r comes from verl's ±20 clamp, so there W = 0 past |log r| > 20 (e.g. a
token with A < 0 and r > e^20 gets no gradient, as in the official code). Deliberate
difference: the unclamped log r is bounded at ±80 (`RAW_LOG_RATIO_LIMIT`) so HP's exp cannot
overflow float32, where the official code would return inf; no real policy gets there.
"""

import math

import torch

from trainer.losses.base import Surrogate, TokenBatch, trust_region
from trainer.spec import PolicyLossConfig


def dgpo(batch: TokenBatch, cfg: PolicyLossConfig) -> Surrogate:
    """Per-token DGPO surrogate; regions are chosen before any exp, so nothing overflows."""
    n, m = cfg.dgpo_n, cfg.dgpo_m
    raw = batch.raw_log_ratio
    ln, hp = trust_region(batch, cfg)
    ln_log = (n + 1) * raw - n * math.log1p(-cfg.clip_ratio_low)
    hp_log = (m - 1) / m * raw + math.log1p(cfg.clip_ratio_high) / m
    value = torch.where(ln, ln_log, torch.where(hp, hp_log, batch.log_ratio)).exp()
    coef = torch.where(ln | hp | batch.in_range, value, torch.zeros_like(value))
    return Surrogate(value=value, coef=coef, ln=ln, hp=hp, dual=torch.zeros_like(ln))
