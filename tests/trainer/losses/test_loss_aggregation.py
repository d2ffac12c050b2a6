"""Micro-batches normalised by the step's global counts reproduce the full-batch gradient
(the verl #5625 bug), in every aggregation mode and for every loss."""

import pytest
import torch

from trainer.losses.aggregation import aggregate_loss, step_counts
from trainer.losses.registry import combine_metrics, compute_policy_loss
from trainer.spec import LOSS_AGG_MODES, POLICY_LOSS_NAMES, PolicyLossConfig

SPLITS = [slice(0, 2), slice(2, 5), slice(5, 7)]


def step_batch():
    gen = torch.Generator().manual_seed(11)
    shape = (7, 9)
    old = -torch.rand(shape, generator=gen, dtype=torch.float64) * 3
    new = old + torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5
    adv = torch.randn(shape, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([9, 1, 4, 0, 7, 2, 6])  # unequal lengths and one empty row
    mask = torch.arange(9)[None, :] < lengths[:, None]
    return new, old, adv, mask


def loss_and_grad(name, mode, new, old, adv, mask, **counts):
    log_prob = new.clone().requires_grad_()
    cfg = PolicyLossConfig(name=name, loss_agg_mode=mode)
    loss, metrics = compute_policy_loss(name, log_prob, old, adv, mask, cfg, **counts)
    (grad,) = torch.autograd.grad(loss, log_prob)
    return loss.detach(), grad, metrics


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
@pytest.mark.parametrize("name", POLICY_LOSS_NAMES)
def test_micro_batches_sum_to_the_full_batch_loss_and_gradient(name, mode):
    new, old, adv, mask = step_batch()
    full_loss, full_grad, full_metrics = loss_and_grad(name, mode, new, old, adv, mask)
    tokens, seqs = step_counts(mask)
    parts = [
        loss_and_grad(
            name, mode, new[s], old[s], adv[s], mask[s], global_tokens=tokens, global_seqs=seqs
        )
        for s in SPLITS
    ]
    torch.testing.assert_close(sum(p[0] for p in parts), full_loss, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), full_grad, rtol=1e-12, atol=1e-15)
    combined = combine_metrics([p[2] for p in parts])
    for key in (
        "loss/tokens",
        "clip/ln_frac",
        "clip/hp_frac",
        "ratio/mean",
        "ratio/max",
        "weight/mean",
    ):
        assert combined[key] == pytest.approx(full_metrics[key], rel=1e-12), key


def test_local_means_would_not_match_so_the_global_counts_matter():
    new, old, adv, mask = step_batch()
    full_loss, _, _ = loss_and_grad("grpo", "token-mean", new, old, adv, mask)
    naive = sum(
        loss_and_grad("grpo", "token-mean", new[s], old[s], adv[s], mask[s])[0] for s in SPLITS
    )
    assert not torch.isclose(naive / len(SPLITS), full_loss)


def test_modes_match_their_definitions():
    per_token = torch.arange(12, dtype=torch.float64).view(3, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    sums, lengths = torch.tensor([3.0, 4.0]), torch.tensor([3.0, 1.0])
    expected = {
        "token-mean": 7.0 / 4,
        "seq-mean-token-sum": sums.sum() / 2,
        "seq-mean-token-mean": (sums / lengths).sum() / 2,
        "seq-mean-token-sum-norm": sums.sum() / (2 * 4),
    }
    for mode, want in expected.items():
        got = aggregate_loss(per_token, mask, mode)
        assert got.item() == pytest.approx(float(want)), mode
    scaled = aggregate_loss(per_token, mask, "seq-mean-token-sum-norm", scale_factor=10.0)
    assert scaled.item() == pytest.approx(7.0 / 20)


def test_unknown_mode_lists_the_known_ones():
    with pytest.raises(ValueError, match="seq-mean-token-mean"):
        aggregate_loss(torch.zeros(1, 1), torch.ones(1, 1), "sum")
