"""Chunked log-probs/entropy equal the naive log_softmax path, values and gradients, and the
fused lm_head path never keeps a [tokens, vocab] tensor for backward."""

import math

import pytest
import torch

from trainer.rl import logprobs
from trainer.rl.logprobs import (
    entropy_from_logits,
    fused_token_logprobs,
    keeps_logits,
    token_logprobs_from_logits,
)

N, H, V = 23, 16, 300


def naive(logits, labels, temperature):
    log_p = torch.log_softmax(logits / temperature, dim=-1)
    return log_p.gather(-1, labels[..., None]).squeeze(-1), -(log_p.exp() * log_p).sum(-1)


def inputs(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=gen, dtype=dtype)
    weight = torch.randn(V, H, generator=gen, dtype=dtype) * 0.5
    labels = torch.randint(0, V, (N,), generator=gen)
    return hidden, weight, labels, torch.randn(N, generator=gen, dtype=dtype)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("chunk_size", [1, 5, 1024])
def test_logits_path_equals_log_softmax_gather_within_1e_5_fp32(temperature, chunk_size):
    hidden, weight, labels, _ = inputs()
    logits = (hidden @ weight.T).view(1, N, V) * 4  # peaked rows, large logits
    got = token_logprobs_from_logits(
        logits, labels.view(1, N), temperature=temperature, chunk_size=chunk_size
    )
    entropy = entropy_from_logits(logits, temperature=temperature, chunk_size=chunk_size)
    want, want_entropy = naive(logits.double(), labels.view(1, N), temperature)
    assert got.shape == entropy.shape == (1, N) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy.double(), want_entropy, rtol=0, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logits_path_gradient_equals_naive_gradient(temperature):
    hidden, weight, labels, upstream = inputs(torch.float64)
    logits = (hidden @ weight.T).requires_grad_()
    up_entropy = upstream.flip(0)
    got = token_logprobs_from_logits(logits, labels, temperature=temperature, chunk_size=4)
    ent = entropy_from_logits(logits, temperature=temperature, chunk_size=4)
    (grad,) = torch.autograd.grad((got * upstream).sum() + (ent * up_entropy).sum(), logits)
    want, want_ent = naive(logits, labels, temperature)
    (want_grad,) = torch.autograd.grad(
        (want * upstream).sum() + (want_ent * up_entropy).sum(), logits
    )
    torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_entropy", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.8])
def test_fused_path_values_and_gradients_equal_naive_path(with_entropy, temperature):
    hidden, weight, labels, upstream = inputs(torch.float64, seed=1)
    leaves = [hidden.requires_grad_(), weight.requires_grad_()]
    log_p, entropy = fused_token_logprobs(
        hidden, weight, labels, temperature=temperature, chunk_size=6, with_entropy=with_entropy
    )
    want, want_entropy = naive(hidden @ weight.T, labels, temperature)
    objective = (log_p * upstream).sum()
    want_objective = (want * upstream).sum()
    if with_entropy:
        torch.testing.assert_close(entropy, want_entropy, rtol=1e-10, atol=1e-12)
        objective = objective + (entropy * upstream.flip(0)).sum()
        want_objective = want_objective + (want_entropy * upstream.flip(0)).sum()
    else:
        assert entropy is None
    torch.testing.assert_close(log_p, want, rtol=1e-10, atol=1e-12)
    grads = torch.autograd.grad(objective, leaves)
    want_grads = torch.autograd.grad(want_objective, leaves)
    for got, ref in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_fused_path_in_bfloat16_tracks_fp32_reference():
    hidden, weight, labels, upstream = inputs(torch.float32, seed=2)
    bf_hidden, bf_weight = hidden.bfloat16().requires_grad_(), weight.bfloat16().requires_grad_()
    log_p, _ = fused_token_logprobs(bf_hidden, bf_weight, labels, chunk_size=7)
    (log_p * upstream).sum().backward()
    ref_w = bf_weight.detach().float().requires_grad_()
    want, _ = naive(bf_hidden.detach().float() @ ref_w.T, labels, 1.0)
    (want * upstream).sum().backward()
    assert log_p.dtype == torch.float32 and bf_weight.grad.dtype == torch.bfloat16
    torch.testing.assert_close(log_p, want, rtol=0, atol=0.05)
    torch.testing.assert_close(bf_weight.grad.float(), ref_w.grad, rtol=0.05, atol=0.02)


def test_fused_path_saves_no_vocabulary_sized_tensor_for_backward():
    """More rows than the hidden size (N > H): nothing logits-sized is kept either."""
    hidden, weight, labels, upstream = inputs()
    saved_shapes = []

    def pack(tensor):
        saved_shapes.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        log_p, entropy = fused_token_logprobs(
            hidden.requires_grad_(),
            weight.requires_grad_(),
            labels,
            chunk_size=4,
            with_entropy=True,
        )
    (log_p * upstream + entropy).sum().backward()
    assert V * H < N * V  # the weight itself is saved; nothing as large as the logits is
    assert saved_shapes and all(math.prod(shape) <= V * H for shape in saved_shapes)
    assert hidden.grad is not None and weight.grad is not None


@pytest.mark.parametrize("with_entropy", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.8])
def test_logits_kept_for_backward_give_the_gradients_of_recomputed_ones_bit_for_bit(
    with_entropy, temperature
):
    """At most H rows: forward keeps its logits and the first backward uses them; a second
    backward (the graph retained) finds them consumed and recomputes. Same bits."""
    hidden, weight, labels, upstream = inputs(seed=3)
    rows = H - 4  # three chunks of 4 (the logits, 12 x V, no larger than the weight, V x H)
    leaves = [hidden[:rows].clone().requires_grad_(), weight.requires_grad_()]
    assert keeps_logits(*leaves) and not keeps_logits(hidden.requires_grad_(), weight)
    log_p, entropy = fused_token_logprobs(
        *leaves, labels[:rows], temperature=temperature, chunk_size=4, with_entropy=with_entropy
    )
    objective = (log_p * upstream[:rows]).sum()
    if entropy is not None:
        objective = objective + (entropy * upstream[:rows].flip(0)).sum()
    kept = torch.autograd.grad(objective, leaves, retain_graph=True)
    recomputed = torch.autograd.grad(objective, leaves)
    for got, want in zip(kept, recomputed, strict=True):
        assert torch.equal(got, want)
    want_log_p, _ = naive(leaves[0].detach() @ weight.detach().T, labels[:rows], temperature)
    torch.testing.assert_close(log_p, want_log_p, rtol=1e-5, atol=1e-6)


def values_and_gradients(vocab: int, rows: int, temperature: float, with_entropy: bool):
    """Both entry points' outputs and their gradients, in chunks of 7 rows (small
    vocabularies) or one chunk."""
    chunk = 7 if vocab == V else 1024
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randn(rows, H, generator=gen).requires_grad_()
    weight = (torch.randn(vocab, H, generator=gen) * 0.5).requires_grad_()
    logits = (torch.randn(rows, vocab, generator=gen) * 3).requires_grad_()
    labels = torch.randint(0, vocab, (rows,), generator=gen)
    upstream = torch.randn(rows, generator=gen)
    fused = fused_token_logprobs(
        hidden, weight, labels, temperature=temperature, chunk_size=chunk, with_entropy=with_entropy
    )
    from_logits = (
        token_logprobs_from_logits(logits, labels, temperature=temperature, chunk_size=chunk),
        entropy_from_logits(logits, temperature=temperature, chunk_size=chunk)
        if with_entropy
        else None,
    )
    outputs = [t for t in (*fused, *from_logits) if t is not None]
    objective = sum((t * upstream.roll(i)).sum() for i, t in enumerate(outputs))
    return [*outputs, *torch.autograd.grad(objective, [hidden, weight, logits])]


@pytest.mark.parametrize("with_entropy", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.8])
@pytest.mark.parametrize(("vocab", "rows", "slice_rows"), [(V, N, 3), (49_152, 40, None)])
def test_cache_sized_row_slices_give_the_bits_of_whole_chunks(
    monkeypatch, with_entropy, temperature, vocab, rows, slice_rows
):
    """The softmax maths over slices of a chunk's rows (3 rows, across chunk edges; and the
    default size at SmolLM2's vocabulary) give the values and gradients, bit for bit, of the
    maths over whole chunks, for both entry points, so slicing only changes the speed."""
    monkeypatch.setattr(logprobs, "SLICE_BYTES", 1 << 40)  # a chunk is one slice
    whole = values_and_gradients(vocab, rows, temperature, with_entropy)
    if slice_rows is not None:
        monkeypatch.setattr(logprobs, "SLICE_BYTES", slice_rows * vocab * 4)
    else:
        monkeypatch.undo()
        assert logprobs.SLICE_BYTES // (vocab * 4) < rows / 3  # several slices a chunk
    sliced = values_and_gradients(vocab, rows, temperature, with_entropy)
    for got, want in zip(sliced, whole, strict=True):
        assert torch.equal(got, want)


def test_bad_shapes_and_options_say_what_to_do():
    hidden, weight, labels, _ = inputs()
    with pytest.raises(ValueError, match="flatten"):
        fused_token_logprobs(hidden.view(1, N, H), weight, labels)
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs_from_logits(hidden @ weight.T, labels, temperature=0.0)
    with pytest.raises(ValueError, match="without the vocabulary"):
        token_logprobs_from_logits(hidden @ weight.T, labels[:-1])
