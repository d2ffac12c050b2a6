"""Every policy loss equals an independent transcription of its official code, in float64, in
every region (LN, HP, inside, dual clip, past the ±20 log-ratio clamp): loss and gradient
within 1e-9 relative.

References, transcribed below from the repositories at these commits:
- verl (volcengine/verl @ b178a3cd56f58b2d502255daba591e92833930a7), verl/trainer/ppo/
  core_algos.py: compute_policy_loss_vanilla (grpo, dapo), _cispo, _gspo, _sapo, agg_loss;
- DGPO-RL (VenomRose-Juri/DGPO-RL @ cc225d44a66bacaaf952cff04ec578114d8179ff),
  core_algos.py: compute_policy_loss with ratio_mode "dgpo";
- CE-GPPO (Kwai-Klear/CE-GPPO @ 10558fe017ac776773fd7f29753d8353a11c0813), core_algos.py:
  compute_gppo_loss_general_beta (ce_gppo; gppo is β1 = β2 = 1);
- Archer2.0 (wizard-III/Archer2.0 @ b08d963d5d65909ef1f24dba2f382006d0be33e1),
  core_algos.py: compute_policy_loss_archer (aspo; one ε pair for every token).
"""

import math

import pytest
import torch

from trainer.losses.registry import compute_policy_loss
from trainer.spec import POLICY_LOSS_NAMES, PolicyLossConfig

F64 = torch.float64


def masked_mean(x, mask):
    return (x * mask).sum() / mask.sum()


def agg(loss_mat, mask, mode):
    if mode == "token-mean":
        return masked_mean(loss_mat, mask)
    assert mode == "seq-mean-token-mean"
    return ((loss_mat * mask).sum(-1) / mask.sum(-1)).mean()


def verl_vanilla(old, logp, adv, mask, cfg):
    ratio = torch.exp(torch.clamp(logp - old, min=-20.0, max=20.0))
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high)
    clip1 = torch.maximum(pg1, pg2)
    pg3 = -adv * cfg.clip_ratio_c
    clip2 = torch.min(pg3, clip1)
    return torch.where(adv < 0, clip2, clip1)


def dgpo_official(old, logp, adv, mask, cfg):
    ratio = torch.exp(torch.clamp(logp - old, min=-20.0, max=20.0))
    lower, upper = 1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high
    log_upper = torch.log(torch.tensor(upper, dtype=logp.dtype))
    neg_low = (ratio < lower) & (adv < 0)
    pos_up = (ratio > upper) & (adv > 0)
    n, m = cfg.dgpo_n, cfg.dgpo_m
    ratio = torch.where(
        neg_low, torch.exp(logp + n * logp.detach() - (n + 1) * old) / (lower**n), ratio
    )
    ratio = torch.where(
        pos_up,
        torch.exp(logp + (log_upper / m) - old * (m - 1) / m - logp.detach() / m),
        ratio,
    )
    return -adv * ratio


def gppo_general_beta(old, logp, adv, mask, cfg, beta1, beta2):
    ratio = torch.exp(logp - old)
    ratio_detached = ratio.detach()
    low_mask = (ratio < (1 - cfg.clip_ratio_low)) & (adv < 0)
    high_mask = (ratio > (1 + cfg.clip_ratio_high)) & (adv > 0)
    other_mask = ~(low_mask | high_mask)
    clip1 = torch.zeros_like(adv)
    clip1[low_mask] = (
        -beta1 * (1 - cfg.clip_ratio_low) / ratio_detached[low_mask] * ratio[low_mask]
    ) * adv[low_mask]
    clip1[high_mask] = (
        -beta2 * (1 + cfg.clip_ratio_high) / ratio_detached[high_mask] * ratio[high_mask]
    ) * adv[high_mask]
    clip1[other_mask] = -ratio[other_mask] * adv[other_mask]
    pg3 = -adv * cfg.clip_ratio_c
    clip2 = torch.min(pg3, clip1)
    return torch.where(adv < 0, clip2, clip1)


def verl_cispo(old, logp, adv, mask, cfg):
    ratio = torch.exp(torch.clamp(logp - old, min=-20.0, max=20.0))
    clipped = torch.clamp(ratio, 1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high).detach()
    return -clipped * adv * logp


def verl_gspo(old, logp, adv, mask, cfg):
    neg_kl = logp - old
    lengths = torch.sum(mask, dim=-1).clamp(min=1)
    seq = torch.sum(neg_kl * mask, dim=-1) / lengths
    log_s = logp - logp.detach() + seq.detach().unsqueeze(-1)
    s = torch.exp(torch.clamp(log_s, max=10.0))
    pg1 = -adv * s
    pg2 = -adv * torch.clamp(s, 1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high)
    return torch.maximum(pg1, pg2)


def verl_sapo(old, logp, adv, mask, cfg):
    tau_pos = torch.as_tensor(cfg.sapo_tau_pos, dtype=adv.dtype)
    tau_neg = torch.as_tensor(cfg.sapo_tau_neg, dtype=adv.dtype)
    ratio = torch.exp(torch.clamp(logp - old, min=-20.0, max=20.0))
    taus = torch.where(adv > 0, tau_pos, tau_neg)
    gates = torch.sigmoid(taus * (ratio - 1.0)) * (4.0 / taus)
    return -gates * adv


def archer(old, logp, adv, mask, cfg):
    ratio = torch.exp(torch.clamp(logp - old, min=-20.0, max=20.0))
    c = cfg.clip_ratio_c
    neg_clip = torch.clamp(ratio, min=1 - cfg.clip_ratio_low, max=None)
    pos_clip = torch.clamp(ratio, min=None, max=1 + cfg.clip_ratio_high)
    neg_losses_clip = -adv * neg_clip
    pos_losses_clip = -adv * (pos_clip / pos_clip.detach()) / pos_clip.detach()
    neg_dual_ratio = torch.clamp(neg_clip, min=None, max=c)
    neg_clipped = torch.gt(neg_clip, neg_dual_ratio)
    neg_losses = torch.where(neg_clipped, -adv * neg_dual_ratio.detach() * logp, neg_losses_clip)
    pos_dual_ratio = torch.clamp(1 / pos_clip, min=None, max=c)
    pos_clipped = torch.gt(1 / pos_clip, pos_dual_ratio)
    pos_losses = torch.where(pos_clipped, -adv * pos_dual_ratio.detach() * logp, pos_losses_clip)
    return torch.where(adv < 0, neg_losses, pos_losses)


REFERENCES = {
    "grpo": verl_vanilla,
    "dapo": verl_vanilla,
    "dgpo": dgpo_official,
    "gppo": lambda *a: gppo_general_beta(*a, beta1=1.0, beta2=1.0),
    "ce_gppo": lambda o, lp, a, m, c: gppo_general_beta(
        o, lp, a, m, c, beta1=c.ce_gppo_beta1, beta2=c.ce_gppo_beta2
    ),
    "cispo": verl_cispo,
    "gspo": verl_gspo,
    "sapo": verl_sapo,
    "aspo": archer,
}

CONFIGS = {  # the recipe, plus settings that populate every region
    "dgpo": [{}, {"dgpo_n": 2, "dgpo_m": 3, "clip_ratio_high": 0.28}],
    "gspo": [{}, {"clip_ratio_low": 0.05, "clip_ratio_high": 0.05}],
    "ce_gppo": [{}, {"ce_gppo_beta1": 0.5}, {"clip_ratio_c": 3.0, "ce_gppo_beta1": 5.0}],
    "gppo": [{}, {"clip_ratio_c": 3.0}],
    "cispo": [{}, {"clip_ratio_low": 0.2}],
    "sapo": [{}, {"sapo_tau_pos": 0.7, "sapo_tau_neg": 1.3}],
}


def inputs(seed: int):
    """Random tokens over every region, then extremes: each pair of log-probs from
    {−60, −21.5, −1, 0}, so |log r| reaches 60 (past verl's ±20 clamp) with both signs of A;
    last, a sequence whose mean log r (≈ 18.6) is past GSPO's clamp at 10."""
    gen = torch.Generator().manual_seed(seed)
    shape = (6, 40)
    old = -torch.rand(shape, generator=gen, dtype=F64) * 4.0 - 0.05
    new = (old + (torch.rand(shape, generator=gen, dtype=F64) * 2 - 1) * 3.0).clamp(max=0.0)
    adv = torch.randn(shape, generator=gen, dtype=F64)
    values = torch.tensor([-60.0, -21.5, -1.0, 0.0], dtype=F64)
    ext_new, ext_old = torch.cartesian_prod(values, values).T
    ext_new, ext_old = ext_new.repeat(2).view(2, 16), ext_old.repeat(2).view(2, 16)
    ext_adv = torch.tensor([1.5, -0.7], dtype=F64).repeat_interleave(16).view(2, 16)
    pad = torch.zeros(2, shape[1] - 16, dtype=F64)
    new = torch.cat([new, torch.cat([ext_new, pad], 1)])
    old = torch.cat([old, torch.cat([ext_old, pad], 1)])
    adv = torch.cat([adv, torch.cat([ext_adv, pad + 1.0], 1)])
    far_old = -torch.linspace(35.0, 5.0, shape[1], dtype=F64)[None]
    signs = torch.tensor([1.0, -1.0], dtype=F64).repeat(shape[1] // 2)[None]
    new = torch.cat([new, torch.full_like(far_old, -0.5)])
    old, adv = torch.cat([old, far_old]), torch.cat([adv, 0.8 * signs])
    mask = torch.ones(new.shape, dtype=torch.bool)
    mask[0, 30:] = False
    mask[-3:-1, 16:] = False
    return new, old, adv, mask


@pytest.mark.parametrize("name", POLICY_LOSS_NAMES)
def test_loss_and_gradient_equal_the_official_code_in_every_region(name):
    for overrides in CONFIGS.get(name, [{}]):
        cfg = PolicyLossConfig(name=name, **overrides)
        mode = cfg.loss_agg_mode
        for seed in range(3):
            new, old, adv, mask = inputs(seed)
            ours_lp = new.clone().requires_grad_()
            loss, _ = compute_policy_loss(name, ours_lp, old, adv, mask, cfg)
            (grad,) = torch.autograd.grad(loss, ours_lp)
            ref_lp = new.clone().requires_grad_()
            ref_loss = agg(REFERENCES[name](old, ref_lp, adv, mask, cfg), mask, mode)
            (ref_grad,) = torch.autograd.grad(ref_loss, ref_lp)
            assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-9, abs=1e-300)
            torch.testing.assert_close(grad[mask], ref_grad[mask], rtol=1e-9, atol=0)


def test_saturated_ratio_with_negative_advantage_gets_no_gradient():
    """r = e^25 with A < 0: verl and the official DGPO code give 0 (the clamp's gradient);
    the dual clip gives 0 in grpo, gppo and ce_gppo."""
    old = torch.tensor([[-30.0]], dtype=F64)
    adv = -torch.ones(1, 1, dtype=F64)
    for name in ("dgpo", "grpo", "gppo", "ce_gppo", "sapo"):
        log_prob = torch.tensor([[-5.0]], dtype=F64, requires_grad=True)
        cfg = PolicyLossConfig(name=name)
        loss, _ = compute_policy_loss(name, log_prob, old, adv, torch.ones(1, 1), cfg)
        (grad,) = torch.autograd.grad(loss, log_prob)
        assert grad.item() == 0.0, name


@pytest.mark.parametrize("name", ["gppo", "ce_gppo"])
def test_gradient_preserving_losses_apply_the_dual_clip(name):
    """A < 0 with r = 20 > c = 10 (the recipe): value c·A, gradient 0, counted as dual."""
    cfg = PolicyLossConfig(name=name)
    assert cfg.clip_ratio_c == 10.0
    old = torch.tensor([[math.log(0.01)]], dtype=F64)
    log_prob = torch.tensor([[math.log(0.2)]], dtype=F64, requires_grad=True)
    adv = -torch.ones(1, 1, dtype=F64)
    loss, metrics = compute_policy_loss(name, log_prob, old, adv, torch.ones(1, 1), cfg)
    (grad,) = torch.autograd.grad(loss, log_prob)
    assert loss.item() == pytest.approx(10.0) and grad.item() == 0.0
    assert metrics["clip/dual_frac"] == 1.0


@pytest.mark.parametrize("name", POLICY_LOSS_NAMES)
def test_at_exactly_20_the_log_ratio_clamp_still_passes_the_gradient(name):
    """torch.clamp's bounds are inclusive: at |log r| = 20 exactly, verl's clamp (and every
    official code built on it) still passes the gradient; only past it is W = 0."""
    cfg = PolicyLossConfig(name=name)
    new = torch.tensor([[-21.0, -1.0, -21.0, -1.0]], dtype=F64)  # log r = -20, 20, -20, 20
    old = torch.tensor([[-1.0, -21.0, -1.0, -21.0]], dtype=F64)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=F64)
    mask = torch.ones(new.shape, dtype=torch.bool)
    ours_lp, ref_lp = new.clone().requires_grad_(), new.clone().requires_grad_()
    loss, _ = compute_policy_loss(name, ours_lp, old, adv, mask, cfg)
    (grad,) = torch.autograd.grad(loss, ours_lp)
    ref_loss = agg(REFERENCES[name](old, ref_lp, adv, mask, cfg), mask, cfg.loss_agg_mode)
    (ref_grad,) = torch.autograd.grad(ref_loss, ref_lp)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=0)
