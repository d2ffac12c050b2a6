"""Token log-probs and entropy without materialising `[tokens, vocab]` more than once.

Two entry points, both custom autograd functions that work `chunk_size` rows at a time and
recompute the softmax in backward instead of saving it:
- from logits (`token_logprobs_from_logits`, `entropy_from_logits`): the caller's logits are the
  only `[N, V]` tensor kept; the fp32 softmax, its log and their gradients exist for one chunk.
- from hidden states (`fused_token_logprobs`): the lm_head is applied chunk by chunk, in
  forward and again in backward, so neither the logits nor their gradient ever exist in full
  (memory: one weight-sized gradient plus a few `[chunk, V]` buffers; time: one extra matmul).
  Where the logits are no larger than the lm_head weight (at most as many rows as the hidden
  size: a CPU step of a few hundred response tokens), forward keeps its chunks for backward
  instead, which skips that matmul (a quarter of the lm_head's FLOPs) and costs at most one
  more weight-sized buffer; backward then reads the very tensors it would have recomputed,
  so the gradients are the same bits (tests/trainer/rl/test_logprobs.py).

The softmax maths run over slices of a chunk's rows small enough to stay in cache on CPU
(`SLICE_BYTES`): each row's numbers are computed alone, so the slices give the same bits
as whole chunks, while the half-dozen elementwise passes (max, exp, products, sums) stop
streaming a chunk of `rows x V` floats from memory each.

Maths per row, with z = logits / T, lse = logsumexp(z), p = softmax(z):
log π(y) = z_y − lse;  H = −Σ p·log p;  ∂log π(y)/∂z = onehot(y) − p;  ∂H/∂z = −p·(z − E_p[z]).
Softmax work is in fp32 (float64 for float64 inputs). `labels` must be valid ids in [0, V)
(pad masked positions with any real token id, not −100). Pass contiguous logits: a
non-viewable slice such as `logits[:, :-1]` is copied by `reshape`; slice the result instead.
"""

from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import FunctionCtx, once_differentiable


def token_logprobs_from_logits(
    logits: Tensor, labels: Tensor, *, temperature: float = 1.0, chunk_size: int = 1024
) -> Tensor:
    """log softmax(logits / T)[labels], fp32 (or wider), shaped like `labels`; differentiable."""
    flat_logits, flat_labels = _flatten(logits, labels, temperature, chunk_size)
    log_prob = _LogitsStats.apply(flat_logits, flat_labels, temperature, chunk_size, False)
    return log_prob.view(labels.shape)


def entropy_from_logits(
    logits: Tensor, *, temperature: float = 1.0, chunk_size: int = 1024
) -> Tensor:
    """Entropy of softmax(logits / T) per position, fp32, shape `logits.shape[:-1]`."""
    labels = torch.zeros(logits.shape[:-1], dtype=torch.long, device=logits.device)
    flat_logits, flat_labels = _flatten(logits, labels, temperature, chunk_size)
    _, entropy = _LogitsStats.apply(flat_logits, flat_labels, temperature, chunk_size, True)
    return entropy.view(labels.shape)


def fused_token_logprobs(
    hidden: Tensor,
    lm_head_weight: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """(log π(labels), entropy or None) of `hidden [N, H] @ lm_head_weight[V, H].T / T`, fp32.

    Differentiable in `hidden` and `lm_head_weight`, entropy included. The weight gradient is
    accumulated in fp32 (then cast to the weight's dtype), so bf16 chunks do not lose precision.
    """
    if hidden.dim() != 2 or labels.shape != hidden.shape[:1]:
        raise ValueError(
            f"hidden must be [N, H] and labels [N]; got {tuple(hidden.shape)} and "
            f"{tuple(labels.shape)} (flatten batch and time first)"
        )
    _check_options(temperature, chunk_size)
    keep = keeps_logits(hidden, lm_head_weight)
    outputs = _FusedStats.apply(
        hidden, lm_head_weight, labels, temperature, chunk_size, with_entropy, keep
    )
    return (outputs[0], outputs[1]) if with_entropy else (outputs, None)


def _flatten(
    logits: Tensor, labels: Tensor, temperature: float, chunk_size: int
) -> tuple[Tensor, Tensor]:
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels {tuple(labels.shape)} must match logits {tuple(logits.shape)} without the "
            "vocabulary dimension"
        )
    _check_options(temperature, chunk_size)
    return logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)


SLICE_BYTES = 2 << 20
"""Size of one row slice of the softmax maths on CPU: an L2's worth, so that the passes over a
slice hit cache (SmolLM2's 512 x 49,152 fp32 logits: ~10 rows a slice, forward and backward
maths 2.5x faster on one thread, `bench/update_speedups.py`). A GPU streams either way, and
slices there would only multiply kernel launches: it takes a chunk at once."""


def _row_slices(z: Tensor) -> Iterator[slice]:
    """Slices of `z`'s rows for the softmax maths (`SLICE_BYTES` on CPU, all rows elsewhere)."""
    rows = z.shape[0]
    step = rows if z.device.type != "cpu" else max(1, SLICE_BYTES // max(1, z[0].nbytes))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _check_options(temperature: float, chunk_size: int) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (got {chunk_size})")


def _softmax_stats(
    z: Tensor, labels: Tensor, with_entropy: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(lse, log π(labels), entropy or None) of fp32 scaled logits z; z is left untouched."""
    lse = torch.logsumexp(z, dim=-1)
    log_prob = z.gather(-1, labels[:, None]).squeeze(-1) - lse
    if not with_entropy:
        return lse, log_prob, None
    log_probs = z - lse[:, None]  # H = −Σ p·log p: non-negative terms, no cancellation
    return lse, log_prob, -log_probs.exp().mul_(log_probs).sum(dim=-1)


def _grad_scaled_logits(
    z: Tensor,
    labels: Tensor,
    lse: Tensor,
    entropy: Tensor | None,
    grad_log_prob: Tensor,
    grad_entropy: Tensor | None,
) -> Tensor:
    """∂(g·log π + g_H·H)/∂z for one chunk; overwrites z (it is a recomputed buffer)."""
    log_probs = z.sub_(lse[:, None])
    prob = log_probs.exp()
    if entropy is None or grad_entropy is None:
        grad = prob.mul_(-grad_log_prob[:, None])
    else:  # z − E_p[z] = log p + H
        centred = log_probs.add_(entropy[:, None]).mul_(-grad_entropy[:, None])
        grad = prob.mul_(centred.sub_(grad_log_prob[:, None]))
    return grad.scatter_add_(1, labels[:, None], grad_log_prob[:, None])


def _chunks(rows: int, chunk_size: int) -> range:
    return range(0, rows, chunk_size)


def _chunked_stats(
    rows_source: Tensor,
    dtype: torch.dtype,
    labels: Tensor,
    chunk_size: int,
    with_entropy: bool,
    chunk_logits: Callable[[slice], Tensor],
    kept: list[Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per-row log-sum-exp, label log-prob (and entropy), one chunk of logits at a time;
    each chunk's logits are appended to `kept` when given."""
    rows = rows_source.shape[0]
    lse, log_prob = (rows_source.new_empty(rows, dtype=dtype) for _ in range(2))
    entropy = rows_source.new_empty(rows, dtype=dtype) if with_entropy else None
    for start in _chunks(rows, chunk_size):
        chunk = slice(start, start + chunk_size)
        z = chunk_logits(chunk)
        if kept is not None:
            kept.append(z)
        for part in _row_slices(z):
            rows = slice(start + part.start, start + part.stop)
            stats = _softmax_stats(z[part], labels[rows], with_entropy)
            lse[rows], log_prob[rows] = stats[0], stats[1]
            if entropy is not None:
                entropy[rows] = stats[2]
    return lse, log_prob, entropy


def _chunk_grad_logits(
    z: Tensor,
    rows: slice,
    labels: Tensor,
    lse: Tensor,
    entropy: Tensor | None,
    grad_log_prob: Tensor,
    grad_entropy: Tensor | None,
    temperature: float,
) -> Tensor:
    """Gradient w.r.t. one chunk's unscaled logits, given its scaled logits `z` (a buffer
    it is written into, slice by slice)."""
    for part in _row_slices(z):
        at = slice(rows.start + part.start, rows.start + part.stop)
        grad = _grad_scaled_logits(
            z[part],
            labels[at],
            lse[at],
            None if entropy is None else entropy[at],
            grad_log_prob[at],
            None if grad_entropy is None else grad_entropy[at],
        )
        z[part] = grad.div_(temperature)
    return z


class _LogitsStats(Function):
    """Chunked log-probs (and entropy) of given logits; saves only the logits and [N] stats."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: Tensor,
        labels: Tensor,
        temperature: float,
        chunk_size: int,
        with_entropy: bool,
    ) -> Tensor | tuple[Tensor, Tensor]:
        dtype = _softmax_dtype(logits)

        def chunk_logits(rows: slice) -> Tensor:
            z = logits[rows].to(dtype)
            return z / temperature if temperature != 1.0 else z

        lse, log_prob, entropy = _chunked_stats(
            logits, dtype, labels, chunk_size, with_entropy, chunk_logits
        )
        ctx.save_for_backward(logits, labels, lse, entropy)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return (log_prob, entropy) if entropy is not None else log_prob

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, grad_log_prob: Tensor, grad_entropy: Tensor | None = None
    ) -> tuple[Tensor | None, ...]:
        logits, labels, lse, entropy = ctx.saved_tensors
        temperature = ctx.temperature
        grad_logits = torch.empty_like(logits)
        for start in _chunks(logits.shape[0], ctx.chunk_size):
            rows = slice(start, start + ctx.chunk_size)
            z = logits[rows].to(lse.dtype, copy=True).div_(temperature)
            grad_logits[rows] = _chunk_grad_logits(
                z, rows, labels, lse, entropy, grad_log_prob, grad_entropy, temperature
            )
        return grad_logits, None, None, None, None


class _FusedStats(Function):
    """Chunked lm_head + log-probs (and entropy); backward recomputes each chunk's logits."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        hidden: Tensor,
        weight: Tensor,
        labels: Tensor,
        temperature: float,
        chunk_size: int,
        with_entropy: bool,
        keep: bool,
    ) -> Tensor | tuple[Tensor, Tensor]:
        kept: list[Tensor] | None = [] if keep else None
        lse, log_prob, entropy = _chunked_stats(
            hidden,
            _softmax_dtype(hidden),
            labels,
            chunk_size,
            with_entropy,
            lambda rows: _scaled_logits(hidden[rows], weight, temperature),
            kept,
        )
        ctx.save_for_backward(hidden, weight, labels, lse, entropy)
        ctx.temperature, ctx.chunk_size, ctx.kept = temperature, chunk_size, kept
        return (log_prob, entropy) if entropy is not None else log_prob

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, grad_log_prob: Tensor, grad_entropy: Tensor | None = None
    ) -> tuple[Tensor | None, ...]:
        hidden, weight, labels, lse, entropy = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=lse.dtype) if need_weight else None
        kept, ctx.kept = ctx.kept, None  # consumed in place: a second backward recomputes
        for index, start in enumerate(_chunks(hidden.shape[0], ctx.chunk_size)):
            rows = slice(start, start + ctx.chunk_size)
            if kept is not None:
                z, kept[index] = kept[index], None  # freed chunk by chunk
            else:
                z = _scaled_logits(hidden[rows], weight, ctx.temperature)
            grad_logits = _chunk_grad_logits(
                z, rows, labels, lse, entropy, grad_log_prob, grad_entropy, ctx.temperature
            ).to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[rows] = grad_logits @ weight
            if grad_weight is not None:
                _accumulate(grad_weight, grad_logits.T, hidden[rows])
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None, None, None


def keeps_logits(hidden: Tensor, weight: Tensor) -> bool:
    """Whether the fused forward keeps its logits for backward: they are no larger than the
    weight (rows <= hidden size), and a backward will run."""
    grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return grad and hidden.shape[0] <= weight.shape[1]


def _softmax_dtype(tensor: Tensor) -> torch.dtype:
    """fp32 for half-precision inputs, the input's own dtype when wider (float64 tests)."""
    return torch.promote_types(tensor.dtype, torch.float32)


def _scaled_logits(hidden: Tensor, weight: Tensor, temperature: float) -> Tensor:
    """(hidden @ weight.T) / T in the softmax dtype, a fresh buffer the caller may overwrite."""
    z = (hidden @ weight.T).to(_softmax_dtype(hidden))
    return z.div_(temperature) if temperature != 1.0 else z


def _accumulate(total: Tensor, left: Tensor, right: Tensor) -> None:
    """total += left @ right; in place when dtypes agree, else via one chunk-sized product."""
    if left.dtype == total.dtype:
        total.addmm_(left, right)
    else:
        total += left @ right
