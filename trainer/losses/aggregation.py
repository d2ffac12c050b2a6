"""Reduce a per-token loss to a scalar, normalised by the whole optimizer step.

Every mode divides by counts of the *optimizer step* (`global_tokens`, `global_seqs`), not of
the micro-batch, so summing micro-batch losses gives exactly the full-batch loss and gradient
(verl issue #5625 is the bug this avoids: per-micro-batch means re-weight tokens). `None` means
"this batch is the whole step" and the counts are taken from `mask`.

Modes (the names of `trainer.spec.LOSS_AGG_MODES`):
- `token-mean`: Σ loss / tokens (DAPO, arXiv 2503.14476).
- `seq-mean-token-sum`: Σ_seq Σ_tok loss / seqs.
- `seq-mean-token-mean`: Σ_seq (Σ_tok loss / |seq|) / seqs (GRPO, arXiv 2402.03300).
- `seq-mean-token-sum-norm`: Σ loss / (seqs · L), L = `scale_factor` (Dr. GRPO, arXiv
  2503.20783: a constant; the trainer passes `rollout.max_response_tokens` unless the spec sets
  one, see `trainer.losses.registry.step_loss_config`), else the padded length as verl does.

A sequence counts when it has at least one valid token.
"""

import torch
from torch import Tensor

from trainer.spec import LOSS_AGG_MODES

Count = int | Tensor | None


def step_counts(response_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(valid tokens, sequences with a valid token) of a mask: pass them as the global counts."""
    mask = response_mask.bool()
    return mask.sum(), mask.any(dim=-1).sum()


def aggregate_loss(
    per_token: Tensor,
    response_mask: Tensor,
    mode: str,
    *,
    global_tokens: Count = None,
    global_seqs: Count = None,
    scale_factor: float | None = None,
) -> Tensor:
    """Scalar loss of one (micro-)batch; masked positions never contribute, even if NaN."""
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {mode!r}; choose one of {list(LOSS_AGG_MODES)}")
    mask = response_mask.bool()
    masked = torch.where(mask, per_token, torch.zeros_like(per_token))
    local_tokens, local_seqs = step_counts(mask)
    if mode == "token-mean":
        return masked.sum() / _denominator(global_tokens, local_tokens, per_token)
    if mode == "seq-mean-token-mean":
        per_seq = masked.sum(dim=-1) / mask.sum(dim=-1).clamp_min(1).to(per_token.dtype)
    elif mode == "seq-mean-token-sum-norm":
        per_seq = masked.sum(dim=-1) / (scale_factor or mask.shape[-1])
    else:
        per_seq = masked.sum(dim=-1)
    return per_seq.sum() / _denominator(global_seqs, local_seqs, per_token)


def _denominator(count: Count, local: Tensor, like: Tensor) -> Tensor:
    """A count ≥ 1 on `like`'s device: a step with nothing valid yields a 0 loss, not NaN."""
    value = local if count is None else count
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).clamp_min(1)
