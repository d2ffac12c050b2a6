"""The policy update: padded rollouts (`trainer.rl.batch`) -> log-probs -> epochs x mini-batches x
micro-batches of the policy loss, with exact global normalisation and a non-finite guard.

π_old is the policy's own log-probs before any optimizer step of the training step. With one
pass over the batch (one epoch, one mini-batch) no step happens before the last forward, so
the update takes π_old as the detached log-probs of its own forward, as TRL's GRPOTrainer does
with `num_iterations == 1` (`old_per_token_logps = per_token_logps.detach()`); otherwise a
separate no-grad pass (`old_policy_logprobs`) computes it first. Both give the same bits:
the same micro-batches through the same kernels (tests/trainer/test_old_policy_shortcut.py).

The training forward never materialises `[tokens, vocab]` logits: the backbone gives
hidden states, and `fused_token_logprobs` applies the lm_head chunk by chunk.
"""

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from trainer.losses.aggregation import aggregate_loss, step_counts
from trainer.losses.registry import combine_metrics, compute_policy_loss, step_loss_config
from trainer.precision import autocast
from trainer.rl.batch import RolloutBatch
from trainer.rl.kl import kl_penalty
from trainer.rl.logprobs import fused_token_logprobs
from trainer.spec import TrainSpec

if TYPE_CHECKING:
    from trainer.rl.step_sync import StepSync


class NonFiniteUpdatesError(RuntimeError):
    """Too many optimizer steps in a row had a NaN/inf loss or gradient."""


def response_logprobs(
    model: nn.Module,
    batch: RolloutBatch,
    temperature: float,
    *,
    with_entropy: bool = False,
    compute_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor | None]:
    """log π(response token) `[N, T]` (0 where masked) and optionally the entropy.

    `compute_dtype` (fp32 masters, `trainer.precision`): the backbone runs under autocast
    and the lm_head weight is cast once, so the fused log-prob matmuls run in it too.
    """
    with autocast(batch.input_ids.device, compute_dtype):
        hidden = model.base_model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).last_hidden_state
    mask = batch.response_mask
    steps = torch.arange(mask.shape[1], device=mask.device)
    positions = (batch.prompt_lens[:, None] - 1 + steps[None, :])[mask]
    rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
    weight = model.get_output_embeddings().weight
    selected = hidden[rows, positions]
    if compute_dtype is not None:
        selected, weight = selected.to(compute_dtype), weight.to(compute_dtype)
    logprobs, entropy = fused_token_logprobs(
        selected,
        weight,
        batch.response_ids[mask],
        temperature=temperature,
        with_entropy=with_entropy,
    )
    zeros = torch.zeros(mask.shape, dtype=logprobs.dtype, device=mask.device)
    return (
        zeros.masked_scatter(mask, logprobs),
        None if entropy is None else zeros.masked_scatter(mask, entropy),
    )


@torch.no_grad()
def batched_logprobs(
    model: nn.Module,
    batch: RolloutBatch,
    micro_batch_size: int,
    temperature: float,
    *,
    compute_dtype: torch.dtype | None = None,
) -> Tensor:
    """Log-probs of the whole batch without gradients (old / reference policy)."""
    chunks = _chunks(len(batch.advantages), micro_batch_size)
    return torch.cat(
        [
            response_logprobs(model, batch.rows(c), temperature, compute_dtype=compute_dtype)[0]
            for c in chunks
        ]
    )


def single_pass(spec: TrainSpec) -> bool:
    """One epoch over one mini-batch: the whole update sees the policy before its only step."""
    optim = spec.optim
    return optim.epochs_per_batch == 1 and optim.mini_batch_prompts >= optim.prompts_per_step


def old_policy_logprobs(
    model: nn.Module,
    batch: RolloutBatch,
    spec: TrainSpec,
    *,
    compute_dtype: torch.dtype | None = None,
) -> Tensor | None:
    """π_old from a separate no-grad pass, or None where `policy_update` takes it from its own
    forward (`single_pass`). Decided by the spec alone, so every rank of a group agrees."""
    if single_pass(spec):
        return None
    return batched_logprobs(
        model,
        batch,
        spec.optim.micro_batch_size,
        spec.rollout.temperature,
        compute_dtype=compute_dtype,
    )


class SkipGuard:
    """Counts skipped (non-finite) updates; aborts after `limit` in a row."""

    def __init__(self, limit: int, consecutive: int = 0, total: int = 0) -> None:
        self.limit = limit
        self.consecutive = consecutive
        self.total = total

    def record(self, finite: bool) -> None:
        if finite:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total += 1
        if self.consecutive >= self.limit:
            raise NonFiniteUpdatesError(
                f"{self.consecutive} consecutive updates had a non-finite loss or gradient "
                "(optim.max_consecutive_skips); lower optim.lr, set optim.grad_clip, or check "
                "the model's weights and dtype"
            )


def policy_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    old_logprobs: Tensor | None,
    ref_logprobs: Tensor | None,
    spec: TrainSpec,
    guard: SkipGuard,
    sync: "StepSync | None" = None,
    *,
    compute_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """All optimizer steps of one training step; returns combined loss diagnostics, and how
    far the engine's log-probs are from π_old (`rollout/...`).

    `old_logprobs` None: π_old is taken from the update's own forward, which only one pass
    over the batch allows (`single_pass`; `old_policy_logprobs` decides).
    `compute_dtype`: autocast over fp32 master weights (`trainer.precision`).

    With `sync` (multi-process), `batch` is this rank's slice (`StepSync.shard`): counts
    and the loss are summed over ranks, and every rank runs every backward (a skipped
    collective would hang the group).
    """
    algo, optim = spec.algorithm, spec.optim
    temperature = spec.rollout.temperature
    if old_logprobs is None and not single_pass(spec):
        raise ValueError("π_old from the update's own forward needs one pass over the batch")
    old_seen = batch.rollout_logprobs.clone()  # rows a non-finite break skips: no drift
    # The optimizer's own parameters: under FSDP2 `model.parameters()` may still list the
    # root's unsharded tensors after a no-grad forward, not the sharded ones being stepped.
    params = [p for group in optimizer.param_groups for p in group["params"]]
    parts: list[dict[str, float]] = []
    losses, grad_norms, skipped = [], [], 0
    mini_rows = optim.mini_batch_prompts * algo.group_size
    if sync is not None:
        mini_rows = sync.local_rows(mini_rows)
    for _ in range(optim.epochs_per_batch):
        for mini in _chunks(len(batch.advantages), mini_rows):
            mask = batch.response_mask[mini]
            tokens, seqs = step_counts(mask) if sync is None else sync.counts(mask)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for micro in _chunks(mini.stop - mini.start, optim.micro_batch_size, mini.start):
                part = batch.rows(micro)
                logprobs, entropy = response_logprobs(
                    model, part, temperature, with_entropy=True, compute_dtype=compute_dtype
                )
                old = logprobs.detach() if old_logprobs is None else old_logprobs[micro]
                old_seen[micro] = old
                loss, metrics = compute_policy_loss(
                    algo.policy_loss.name,
                    logprobs,
                    old,
                    _token_advantages(part, old, spec),
                    part.response_mask,
                    step_loss_config(spec),
                    global_tokens=tokens,
                    global_seqs=seqs,
                    entropy=entropy,
                )
                if ref_logprobs is not None and algo.kl_coef > 0:
                    kl = kl_penalty(logprobs, ref_logprobs[micro], algo.kl_type)
                    loss = loss + algo.kl_coef * _aggregate(kl, part, spec, tokens, seqs)
                    metrics["kl/ref"] = float(kl.detach()[part.response_mask].mean())
                if algo.entropy_coef and entropy is not None:
                    loss = loss - algo.entropy_coef * _aggregate(entropy, part, spec, tokens, seqs)
                parts.append(metrics)
                step_loss += float(loss.detach())
                if sync is None and not math.isfinite(step_loss):
                    break
                loss.backward()
            norm = _clip_grad_norm(params, optim.grad_clip or math.inf)
            if sync is not None:
                step_loss = sync.total(step_loss)
            finite = math.isfinite(step_loss) and math.isfinite(norm)
            guard.record(finite)
            if finite:
                optimizer.step()
                losses.append(step_loss)
                grad_norms.append(norm)
            else:
                skipped += 1
            optimizer.zero_grad(set_to_none=True)
    out = combine_metrics(parts)
    out["loss/total"] = _mean(losses)
    out["grad/norm"] = _mean(grad_norms)
    out["update/skipped"] = float(skipped)
    return out | _rollout_drift(old_seen if old_logprobs is None else old_logprobs, batch)


def _token_advantages(part: RolloutBatch, old: Tensor, spec: TrainSpec) -> Tensor:
    """Each token's advantage; with `rollout_is_correction` weighted by verl's truncated
    importance ratio min(π_old / π_rollout, cap), 0 on padding."""
    algo = spec.algorithm
    advantages = part.advantages[:, None].expand_as(old)
    if not algo.rollout_is_correction:
        return advantages
    ratio = torch.exp(old - part.rollout_logprobs).clamp(max=algo.rollout_is_cap)
    return advantages * ratio.masked_fill(~part.response_mask, 0.0)


def _rollout_drift(old_logprobs: Tensor, batch: RolloutBatch) -> dict[str, float]:
    """How far the engine's log-probs are from the trainer's π_old (rounding, or a bug)."""
    diff = (old_logprobs - batch.rollout_logprobs)[batch.response_mask]
    return {
        "rollout/logprob_abs_diff": float(diff.abs().mean()),
        "rollout/kl_k3": float((torch.exp(diff) - 1 - diff).mean()),
    }


def _aggregate(
    per_token: Tensor, part: RolloutBatch, spec: TrainSpec, tokens: Tensor, seqs: Tensor
) -> Tensor:
    """An extra loss term, normalised exactly like the policy loss."""
    cfg = step_loss_config(spec)
    return aggregate_loss(
        per_token,
        part.response_mask,
        cfg.loss_agg_mode,
        global_tokens=tokens,
        global_seqs=seqs,
        scale_factor=cfg.loss_scale_factor,
    )


def _clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> float:
    """Clip to `max_norm` by the global gradient norm; returns the norm before clipping.

    Under FSDP2 each rank holds disjoint shards (DTensors) of every gradient: the squared
    norms of the local shards are summed over ranks, so every rank clips by the same norm.
    (`nn.utils.clip_grad_norm_` on these DTensors gave a wrong norm with torch 2.13 on gloo.)
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    local = [g.to_local() if isinstance(g, DTensor) else g for g in grads]
    squared = torch.stack([t.detach().float().pow(2).sum() for t in local]).sum()
    if isinstance(grads[0], DTensor):
        torch.distributed.all_reduce(squared, group=grads[0].device_mesh.get_group())
    norm = float(squared.sqrt())
    scale = min(1.0, max_norm / (norm + 1e-6)) if math.isfinite(norm) else 1.0
    if scale < 1.0:
        torch._foreach_mul_(grads, scale)
    return norm


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _chunks(total: int, size: int, offset: int = 0) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(offset + start, offset + min(start + size, total))
