"""KL-to-reference estimators per token, the forms of verl's `kl_penalty` (J. Schulman,
"Approximating KL divergence", 2020), named by `trainer.spec.train.KL_TYPES`.

- `k1`: log π − log π_ref (unbiased value, high variance; its gradient is not KL's);
- `k2`: ½ (log π − log π_ref)² (its gradient is the KL gradient's estimate);
- `k3` / `low_var_kl`: e^(ref−log π) − (ref − log π) − 1, with ref − log π clamped to ±20 and
  the estimate to ±10 as verl does (unclamped it reaches 7.2e10 at ref − log π = 25);
- a `+` suffix (`k1+`, `k3+`, `low_var_kl+`): that value, with k2's gradient (straight-through).
"""

import torch
from torch import Tensor

_LOG_RATIO_LIMIT = 20.0
_ESTIMATE_LIMIT = 10.0


def kl_penalty(log_prob: Tensor, ref_log_prob: Tensor, kind: str) -> Tensor:
    """Per-token estimate of KL(π ‖ π_ref); only `log_prob` carries a gradient."""
    forward = _forward(log_prob, ref_log_prob, kind.removesuffix("+"))
    if not kind.endswith("+"):
        return forward
    k2 = 0.5 * (log_prob - ref_log_prob).square()
    return k2 - k2.detach() + forward.detach()


def _forward(log_prob: Tensor, ref_log_prob: Tensor, kind: str) -> Tensor:
    if kind == "k1":
        return log_prob - ref_log_prob
    if kind == "k2":
        return 0.5 * (log_prob - ref_log_prob).square()
    if kind in ("k3", "low_var_kl"):
        log_ratio = (ref_log_prob - log_prob).clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
        estimate = torch.exp(log_ratio) - log_ratio - 1
        return estimate.clamp(-_ESTIMATE_LIMIT, _ESTIMATE_LIMIT)
    raise ValueError(f"unknown kl_type {kind!r}")
