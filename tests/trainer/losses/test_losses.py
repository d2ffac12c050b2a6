"""Each policy loss's probability-gradient weight W, recovered from autograd, equals its paper's
formula in every region; DGPO's limits, continuity and equivalence with GRPO; numerical safety."""

import math

import pytest
import torch

from trainer.losses.registry import POLICY_LOSSES, compute_policy_loss
from trainer.spec import LOSS_AGG_MODES, POLICY_LOSS_NAMES, PolicyLossConfig

F64 = torch.float64


def recovered_weight(name, log_prob, old_log_prob, advantages, mask, cfg):
    """W = −g / (A·π), g = ∂(Σ per-token loss)/∂log π (token-sum aggregation over one 'seq')."""
    cfg = cfg.model_copy(update={"loss_agg_mode": "seq-mean-token-sum"})
    log_prob = log_prob.clone().requires_grad_()
    loss, metrics = compute_policy_loss(
        name, log_prob, old_log_prob, advantages, mask, cfg, global_seqs=1
    )
    (grad,) = torch.autograd.grad(loss, log_prob)
    return -grad / (advantages * log_prob.detach().exp()), metrics


def random_tokens(seed: int, shape=(6, 40)):
    """Log-probs, ratios in [e^-1.6, e^1.6] and signed advantages: every region is populated."""
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(shape, generator=gen, dtype=F64) * 4.0 - 0.05
    log_ratio = (torch.rand(shape, generator=gen, dtype=F64) * 2 - 1) * 1.6
    new = (old + log_ratio).clamp(max=0.0)
    adv = torch.randn(shape, generator=gen, dtype=F64)
    mask = torch.ones(shape, dtype=torch.bool)
    mask[0, 30:] = False
    return new, old, adv, mask


def regions(pi, pi_old, adv, cfg, ratio=None):
    r = pi / pi_old if ratio is None else ratio
    ln = (adv < 0) & (r < 1 - cfg.clip_ratio_low)
    hp = (adv > 0) & (r > 1 + cfg.clip_ratio_high)
    return r, ln, hp


def expected_weight(name, pi, pi_old, adv, mask, cfg):
    """The papers' W, written in π and π_old (independently of the implementation's log space)."""
    inside = 1.0 / pi_old
    zero = torch.zeros_like(pi)
    eps_l, eps_h = cfg.clip_ratio_low, cfg.clip_ratio_high
    r, ln, hp = regions(pi, pi_old, adv, cfg)
    if name in ("grpo", "dapo"):
        dual = (adv < 0) & (r > cfg.clip_ratio_c)
        return torch.where(ln | hp | dual, zero, inside)
    if name == "dgpo":
        n, m = cfg.dgpo_n, cfg.dgpo_m
        w_ln = pi**n / (pi_old ** (n + 1) * (1 - eps_l) ** n)
        w_hp = (1 + eps_h) ** (1 / m) * pi ** (-1 / m) * pi_old ** (-(m - 1) / m)
        return torch.where(ln, w_ln, torch.where(hp, w_hp, inside))
    if name == "cispo":
        return r.clamp(1 - eps_l, 1 + eps_h) / pi
    if name in ("gppo", "ce_gppo"):
        b1, b2 = (1.0, 1.0) if name == "gppo" else (cfg.ce_gppo_beta1, cfg.ce_gppo_beta2)
        dual = (adv < 0) & (torch.where(ln, b1 * (1 - eps_l), r) > cfg.clip_ratio_c)
        kept = torch.where(
            ln, b1 * (1 - eps_l) / pi, torch.where(hp, b2 * (1 + eps_h) / pi, r / pi)
        )
        return torch.where(dual, zero, kept)
    if name == "sapo":
        tau_pos, tau_neg = (torch.full_like(pi, t) for t in (cfg.sapo_tau_pos, cfg.sapo_tau_neg))
        tau = torch.where(adv > 0, tau_pos, tau_neg)
        gate = torch.sigmoid(tau * (r - 1))
        return 4 * gate * (1 - gate) / pi_old
    if name == "aspo":
        c = cfg.clip_ratio_c
        kept_pos = torch.where(1 / r > c, c / pi, pi_old / pi**2)
        kept_neg = torch.where(r > c, c / pi, inside)
        return torch.where(ln | hp, zero, torch.where(adv > 0, kept_pos, kept_neg))
    if name == "gspo":
        lengths = mask.sum(-1, keepdim=True)
        seq_ratio = torch.exp((torch.log(r) * mask).sum(-1, keepdim=True) / lengths).expand_as(r)
        _, ln_s, hp_s = regions(pi, pi_old, adv, cfg, ratio=seq_ratio)
        return torch.where(ln_s | hp_s, zero, seq_ratio / pi)
    raise AssertionError(name)


CONFIGS = {
    "dgpo": [PolicyLossConfig(name="dgpo"), PolicyLossConfig(name="dgpo", dgpo_n=2, dgpo_m=3)],
    "gspo": [PolicyLossConfig(name="gspo", clip_ratio_low=0.05, clip_ratio_high=0.05)],
    "ce_gppo": [PolicyLossConfig(name="ce_gppo", ce_gppo_beta1=0.5, ce_gppo_beta2=0.8)],
    "cispo": [PolicyLossConfig(name="cispo", clip_ratio_low=0.2)],
    "gppo": [PolicyLossConfig(name="gppo", clip_ratio_c=3.0)],
}


@pytest.mark.parametrize("name", POLICY_LOSS_NAMES)
def test_weight_recovered_from_autograd_matches_paper_formula(name):
    for cfg in CONFIGS.get(name, [PolicyLossConfig(name=name)]):
        for seed in range(3):
            new, old, adv, mask = random_tokens(seed)
            got, metrics = recovered_weight(name, new, old, adv, mask, cfg)
            want = expected_weight(name, new.exp(), old.exp(), adv, mask, cfg)
            torch.testing.assert_close(got[mask], want[mask], rtol=1e-9, atol=1e-12)
            assert metrics["weight/max"] == pytest.approx(want[mask].max().item(), rel=1e-9)
            if name != "gspo":  # regions judged per token: all must be exercised
                _, ln, hp = regions(new.exp(), old.exp(), adv, cfg)
                assert (ln & mask).any() and (hp & mask).any() and (~(ln | hp) & mask).any()
                r = new.exp() / old.exp()
                if name == "cispo":  # its clip is sign-blind: every ratio outside counts
                    ln, hp = r < 1 - cfg.clip_ratio_low, r > 1 + cfg.clip_ratio_high
                outside = want[mask & (ln | hp)].max().item()
                assert metrics["weight/outside_max"] == pytest.approx(outside, rel=1e-9)


def test_registry_is_exactly_the_spec_names():
    assert set(POLICY_LOSSES) == set(POLICY_LOSS_NAMES)


def test_unknown_loss_name_lists_known_ones():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="dgpo"):
        compute_policy_loss("ppo", x, x, x, x.bool(), PolicyLossConfig())


def dgpo_weight_at(ratio: float, adv: float, cfg: PolicyLossConfig) -> float:
    old = torch.tensor([[math.log(0.3)]], dtype=F64)
    new = old + math.log(ratio)
    w, _ = recovered_weight(
        "dgpo", new, old, torch.tensor([[adv]], dtype=F64), torch.ones(1, 1), cfg
    )
    return w.item()


@pytest.mark.parametrize("n,m", [(1, 2), (3, 4)])
def test_dgpo_weight_is_continuous_at_both_bounds(n, m):
    cfg = PolicyLossConfig(dgpo_n=n, dgpo_m=m, clip_ratio_low=0.2, clip_ratio_high=0.28)
    inside = 1 / 0.3
    for bound, adv in ((1 - 0.2, -1.0), (1 + 0.28, 1.0)):
        below = dgpo_weight_at(bound * (1 - 1e-9), adv, cfg)
        above = dgpo_weight_at(bound * (1 + 1e-9), adv, cfg)
        assert below == pytest.approx(inside, rel=1e-7)
        assert above == pytest.approx(inside, rel=1e-7)
    # away from the bounds the decay is real, not a relabelled GRPO
    assert dgpo_weight_at(0.5, -1.0, cfg) < 0.99 * inside
    assert dgpo_weight_at(2.0, 1.0, cfg) < 0.99 * inside


def test_dgpo_equals_grpo_when_every_ratio_is_inside_the_trust_region():
    gen = torch.Generator().manual_seed(7)
    old = -torch.rand(5, 30, generator=gen, dtype=F64) * 3
    new = old + (torch.rand(5, 30, generator=gen, dtype=F64) * 2 - 1) * 0.15
    adv = torch.randn(5, 30, generator=gen, dtype=F64)
    mask = torch.rand(5, 30, generator=gen) > 0.2
    results = {}
    for name in ("dgpo", "grpo"):
        log_prob = new.clone().requires_grad_()
        loss, _ = compute_policy_loss(name, log_prob, old, adv, mask, PolicyLossConfig(name=name))
        (grad,) = torch.autograd.grad(loss, log_prob)
        results[name] = (loss, grad)
    torch.testing.assert_close(results["dgpo"][0], results["grpo"][0], rtol=1e-12, atol=0)
    torch.testing.assert_close(results["dgpo"][1], results["grpo"][1], rtol=1e-12, atol=0)


def test_as_pi_vanishes_on_ln_side_dgpo_weight_vanishes_but_cispo_and_gppo_diverge():
    pi_old, eps = 0.5, 0.2
    probs = torch.tensor([[1e-2, 1e-4, 1e-6, 1e-8]], dtype=F64)
    old = torch.full_like(probs, math.log(pi_old))
    adv, mask = -torch.ones_like(probs), torch.ones_like(probs, dtype=torch.bool)
    weights = {
        name: recovered_weight(
            name, probs.log(), old, adv, mask, PolicyLossConfig(name=name, clip_ratio_low=eps)
        )[0][0]
        for name in ("dgpo", "cispo", "gppo")
    }
    torch.testing.assert_close(
        weights["dgpo"], probs[0] / (pi_old**2 * (1 - eps)), rtol=1e-9, atol=0
    )
    assert weights["dgpo"][-1].item() == pytest.approx(5e-8, rel=1e-9)
    for name in ("cispo", "gppo"):
        torch.testing.assert_close(weights[name], (1 - eps) / probs[0], rtol=1e-9, atol=0)
        assert weights[name][-1].item() == pytest.approx(8e7, rel=1e-9)
        assert torch.all(weights[name].diff() > 0)
    assert torch.all(weights["dgpo"].diff() < 0)


def extreme_inputs(dtype):
    """Every pair from {−100, −20, −1, 0}: log-probs down to −100, ratios from e^−100 to e^100."""
    values = torch.tensor([-100.0, -20.0, -1.0, 0.0], dtype=dtype)
    new, old = torch.cartesian_prod(values, values).T
    adv = torch.tensor([1.0, -1.0], dtype=dtype).repeat_interleave(new.numel())
    new, old = new.repeat(2), old.repeat(2)
    mask = torch.ones(2, new.numel() // 2, dtype=torch.bool)
    mask[1, -3:] = False
    new = new.view(2, -1).clone()
    new[1, -1] = float("nan")  # garbage in a masked slot must not leak
    return new, old.view(2, -1), adv.view(2, -1), mask


@pytest.mark.parametrize("name", POLICY_LOSS_NAMES)
@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_no_nan_or_inf_for_extreme_log_probs_and_ratios(name, mode):
    new, old, adv, mask = extreme_inputs(torch.float32)
    log_prob = new.clone().requires_grad_()
    cfg = PolicyLossConfig(name=name, loss_agg_mode=mode)
    loss, metrics = compute_policy_loss(name, log_prob, old, adv, mask, cfg)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(log_prob.grad).all()
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert metrics["ratio/max"] == pytest.approx(math.exp(20), rel=1e-5)


@pytest.mark.parametrize("name", POLICY_LOSS_NAMES)
@pytest.mark.parametrize("rows", [0, 3])
def test_empty_batch_gives_zero_loss_zero_gradient_and_flag(name, rows):
    log_prob = torch.randn(rows, 5).requires_grad_()
    mask = torch.zeros(rows, 5, dtype=torch.bool)
    loss, metrics = compute_policy_loss(
        name, log_prob, torch.randn(rows, 5), torch.randn(rows, 5), mask, PolicyLossConfig()
    )
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(log_prob.grad, torch.zeros(rows, 5))
    assert metrics["loss/empty_batch"] == 1.0 and metrics["loss/tokens"] == 0.0


def test_all_masked_row_does_not_change_loss_or_metrics():
    new, old, adv, mask = random_tokens(3, shape=(4, 12))
    padded = [
        torch.cat([t, torch.full_like(t[:1], fill)])
        for t, fill in ((new, -1e4), (old, 0.0), (adv, 5.0))
    ]
    padded_mask = torch.cat([mask, torch.zeros_like(mask[:1])])
    for name in POLICY_LOSS_NAMES:
        cfg = PolicyLossConfig(name=name, loss_agg_mode="seq-mean-token-mean")
        base = compute_policy_loss(name, new, old, adv, mask, cfg)
        extra = compute_policy_loss(name, *padded, padded_mask, cfg)
        torch.testing.assert_close(extra[0], base[0])
        assert extra[1] == pytest.approx(base[1])


def test_metrics_report_clip_fractions_and_weights_of_grpo():
    old = torch.log(torch.full((1, 4), 0.5, dtype=F64))
    ratio = torch.tensor([[0.5, 1.0, 1.5, 4.0]], dtype=F64)
    adv = torch.tensor([[-1.0, 1.0, 1.0, -1.0]], dtype=F64)
    _, metrics = compute_policy_loss(
        "grpo", old + ratio.log(), old, adv, torch.ones(1, 4), PolicyLossConfig(name="grpo")
    )
    assert metrics["clip/ln_frac"] == 0.25 and metrics["clip/hp_frac"] == 0.25
    assert metrics["clip/dual_frac"] == 0.25
    assert metrics["ratio/max"] == pytest.approx(4.0)
    assert metrics["weight/mean"] == pytest.approx(0.25 * 2.0)  # only one token keeps W = 1/π_old
    k3 = (ratio - 1 - ratio.log()).mean().item()
    assert metrics["kl/approx_k3"] == pytest.approx(k3)
