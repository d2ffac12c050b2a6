"""Per-micro-batch diagnostics of a policy loss, and how to combine them over a step.

Everything is over the micro-batch's valid tokens and computed in float64 from log space, so
W = coef/π stays finite even for log π = −100 (W ≈ e^100 fits a float64).

`weight/outside_max` is W's maximum over the tokens outside the trust region (LN or HP:
where the loss altered the gradient; 0 without any). Inside it every loss has coef = r, so
W = 1/π_old whatever the loss, and `weight/max` is set by the rarest sampled token; the
DGPO paper's claim (its W decays at the boundaries, CISPO's grows as π → 0) is about the
tokens outside, which this metric isolates.
"""

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from trainer.losses.base import Surrogate, TokenBatch

_MAX_LOG_WEIGHT = 700.0
"""exp(700) is the largest float64 power of e with margin: W beyond it is reported as e^700."""

METRIC_NAMES = (
    "loss/tokens",
    "loss/empty_batch",
    "clip/ln_frac",
    "clip/hp_frac",
    "clip/dual_frac",
    "ratio/mean",
    "ratio/max",
    "kl/approx_k3",
    "weight/mean",
    "weight/max",
    "weight/p99",
    "weight/outside_max",
)


def policy_metrics(
    batch: TokenBatch, surrogate: Surrogate, entropy: Tensor | None = None
) -> dict[str, float]:
    """Metrics of one micro-batch as python floats (one device sync)."""
    mask = batch.mask
    tokens = int(mask.sum())
    if tokens == 0:
        empty = dict.fromkeys(METRIC_NAMES, 0.0) | {"loss/empty_batch": 1.0}
        return empty | ({"entropy/mean": 0.0} if entropy is not None else {})
    log_ratio = batch.log_ratio[mask].double()
    ratio = log_ratio.exp()
    log_weight = surrogate.coef[mask].double().log() - batch.log_prob[mask].double()
    weight = log_weight.clamp(max=_MAX_LOG_WEIGHT).exp()
    p99_rank = max(1, math.ceil(0.99 * tokens))
    outside = (surrogate.ln | surrogate.hp)[mask]
    values = [
        float(tokens),
        0.0,
        surrogate.ln[mask].double().mean(),
        surrogate.hp[mask].double().mean(),
        surrogate.dual[mask].double().mean(),
        ratio.mean(),
        ratio.max(),
        (ratio - 1.0 - log_ratio).mean(),
        weight.mean(),
        weight.max(),
        weight.kthvalue(p99_rank).values,
        torch.where(outside, weight, 0.0).max(),
    ]
    names = list(METRIC_NAMES)
    if entropy is not None:
        names.append("entropy/mean")
        values.append(entropy.detach()[mask].double().mean())
    device = log_ratio.device
    stacked = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device) for v in values])
    return dict(zip(names, stacked.tolist(), strict=True))


def combine_metrics(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Step metrics from micro-batch metrics: `*/max` → max, `loss/tokens` → sum,
    `loss/empty_batch` → 1 only if every part was empty, anything else → mean weighted by
    `loss/tokens` (exact for fractions and means; an approximation for `weight/p99`).
    """
    if not parts:
        return {}
    tokens = [part["loss/tokens"] for part in parts]
    total = sum(tokens)
    combined: dict[str, float] = {}
    for key in parts[0]:
        values = [part[key] for part in parts]
        if key == "loss/tokens":
            combined[key] = total
        elif key == "loss/empty_batch":
            combined[key] = min(values)
        elif key.endswith("/max"):
            combined[key] = max(values)
        else:
            weighted = sum(v * t for v, t in zip(values, tokens, strict=True))
            combined[key] = weighted / total if total else 0.0
    return combined
