"""The KL estimators equal verl's `kl_penalty` (volcengine/verl @ b178a3cd56f58b2d502255daba
591e92833930a7, verl/trainer/ppo/core_algos.py), value and gradient, extremes included."""

import pytest
import torch

from trainer.rl.kl import kl_penalty
from trainer.spec.train import KL_TYPES


def verl_kl_forward(logprob, ref_logprob, kind):
    if kind in ("kl", "k1"):
        return logprob - ref_logprob
    if kind in ("mse", "k2"):
        return 0.5 * (logprob - ref_logprob).square()
    if kind in ("low_var_kl", "k3"):
        kl = torch.clamp(ref_logprob - logprob, min=-20, max=20)
        kld = torch.exp(kl) - kl - 1
        return torch.clamp(kld, min=-10, max=10)
    raise NotImplementedError(kind)


def verl_kl(logprob, ref_logprob, kind):
    forward = verl_kl_forward(logprob, ref_logprob, kind.removesuffix("+"))
    if not kind.endswith("+") or kind in ("mse", "k2"):
        return forward
    backward = 0.5 * (logprob - ref_logprob).square()
    return backward - backward.detach() + forward.detach()


@pytest.mark.parametrize("kind", KL_TYPES)
def test_each_estimator_equals_verls_value_and_gradient(kind):
    ref = torch.tensor([-1.0, -30.0, -0.5, -2.0, -0.1, -40.0], dtype=torch.float64)
    new = torch.tensor([-1.0, -5.0, -3.0, -2.2, -26.0, -0.5], dtype=torch.float64)
    ours_lp, ref_lp = new.clone().requires_grad_(), new.clone().requires_grad_()
    ours, want = kl_penalty(ours_lp, ref, kind), verl_kl(ref_lp, ref, kind)
    torch.testing.assert_close(ours, want, rtol=1e-12, atol=0)
    ours.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(ours_lp.grad, ref_lp.grad, rtol=1e-12, atol=0)


def test_k3_is_clamped_where_the_unclamped_form_explodes():
    log_prob = torch.tensor([-30.0])
    ref = log_prob + 25.0
    assert kl_penalty(log_prob, ref, "k3").item() == 10.0
    assert kl_penalty(log_prob, ref, "low_var_kl").item() == 10.0
