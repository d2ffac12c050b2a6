"""The policy-loss registry and its one entry point, `compute_policy_loss`.

Every loss gives, per token, a detached surrogate value and its derivative with respect to
log π (see `trainer.losses.base`); here that becomes `value + coef·(log π − sg(log π))`,
the per-token loss `−A · surrogate`, and one scalar via `trainer.losses.aggregation`. The
probability gradient weight W (gradient = A·W·∇π) is therefore exactly `coef/π` — the
quantity the DGPO paper is about, reported in the metrics.

Metrics (python floats, over the micro-batch's valid tokens):
- `loss/tokens`: valid tokens; `loss/empty_batch`: 1.0 when there were none (the loss is 0).
- `clip/ln_frac`, `clip/hp_frac`: fraction of tokens whose gradient the loss altered on the
  low-ratio side (LN: r < 1-ε_low, A < 0) and the high-ratio side (HP: r > 1+ε_high, A > 0);
  CISPO's sign-blind clip counts any token outside [1-ε_low, 1+ε_high]; GSPO judges the
  sequence ratio. `clip/dual_frac`: tokens under a dual clip (grpo, dapo; soft in aspo).
- `ratio/mean`, `ratio/max`: r = π/π_old from verl's ±20-clamped log r; `kl/approx_k3`: mean
  of r − 1 − log r.
- `weight/mean`, `weight/max`, `weight/p99`: W per token; `weight/outside_max`: its maximum
  over the LN and HP tokens only (0 without any).
- `entropy/mean`: when `entropy` is passed.
Combine micro-batches with `combine_metrics` (token-weighted means, max of maxima).
"""

from collections.abc import Mapping

from torch import Tensor

from trainer.losses.aggregation import Count, aggregate_loss
from trainer.losses.base import PolicyLossFn, token_batch
from trainer.losses.clip import ce_gppo, cispo, gppo, grpo
from trainer.losses.dgpo import dgpo
from trainer.losses.metrics import combine_metrics, policy_metrics
from trainer.losses.sequence import gspo
from trainer.losses.soft import aspo, sapo
from trainer.spec import POLICY_LOSS_NAMES, PolicyLossConfig, TrainSpec

__all__ = [
    "POLICY_LOSSES",
    "PolicyLossFn",
    "combine_metrics",
    "compute_policy_loss",
    "step_loss_config",
]

POLICY_LOSSES: Mapping[str, PolicyLossFn] = {
    "dgpo": dgpo,
    "grpo": grpo,
    "dapo": grpo,
    "cispo": cispo,
    "gppo": gppo,
    "ce_gppo": ce_gppo,
    "aspo": aspo,
    "sapo": sapo,
    "gspo": gspo,
}
"""`dapo` is `grpo` with the spec's clip-higher preset (ε_high 0.28 when name is `dapo`)."""


def step_loss_config(spec: TrainSpec) -> PolicyLossConfig:
    """The run's loss config. Dr. GRPO's `seq-mean-token-sum-norm` divides by a constant, so
    unset `loss_scale_factor` means `rollout.max_response_tokens`, never a step's padded width
    (which changes from step to step and between micro-batches)."""
    cfg = spec.algorithm.policy_loss
    if cfg.loss_scale_factor is not None:
        return cfg
    return cfg.model_copy(update={"loss_scale_factor": float(spec.rollout.max_response_tokens)})


def compute_policy_loss(
    name: str,
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    cfg: PolicyLossConfig,
    *,
    global_tokens: Count = None,
    global_seqs: Count = None,
    entropy: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Scalar loss to minimise and its diagnostics, for [B, T] inputs.

    `global_tokens` / `global_seqs`: valid tokens / sequences of the whole optimizer step
    (`trainer.losses.aggregation.step_counts` of the step's mask), so that the micro-batch
    losses sum to the full-batch loss; None means this batch is the whole step. Only
    `log_prob` carries a gradient. Masked positions may hold anything, even NaN.
    """
    loss_fn = POLICY_LOSSES.get(name)
    if loss_fn is None:
        raise ValueError(f"unknown policy loss {name!r}; choose one of {list(POLICY_LOSS_NAMES)}")
    batch = token_batch(log_prob, old_log_prob, advantages, response_mask)
    surrogate = loss_fn(batch, cfg)
    safe_log_prob = log_prob.masked_fill(~batch.mask, 0.0)
    moving = safe_log_prob - safe_log_prob.detach()
    per_token = -batch.advantages * (surrogate.value + surrogate.coef * moving)
    loss = aggregate_loss(
        per_token,
        batch.mask,
        cfg.loss_agg_mode,
        global_tokens=global_tokens,
        global_seqs=global_seqs,
        scale_factor=cfg.loss_scale_factor,
    )
    return loss, policy_metrics(batch, surrogate, entropy)
