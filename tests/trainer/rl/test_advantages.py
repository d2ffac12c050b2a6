"""Group advantage estimators: their formulas, zero (never NaN) for a group of equal rewards."""

import pytest
import torch

from trainer.rl.advantages import ADVANTAGE_ESTIMATORS, compute_advantages
from trainer.spec import ADVANTAGE_ESTIMATORS as SPEC_NAMES

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0])


def test_registry_is_exactly_the_spec_names():
    assert set(ADVANTAGE_ESTIMATORS) == set(SPEC_NAMES)


def test_grpo_is_group_z_score_with_eps_in_denominator():
    adv = compute_advantages("grpo", REWARDS, 4, eps=1e-6)
    group = REWARDS[:4]
    torch.testing.assert_close(adv[:4], (group - group.mean()) / (group.std() + 1e-6))
    last = REWARDS[8:]
    torch.testing.assert_close(adv[8:], (last - last.mean()) / (last.std() + 1e-6))


def test_dr_grpo_only_centres():
    adv = compute_advantages("dr_grpo", REWARDS, 4)
    torch.testing.assert_close(adv, REWARDS - REWARDS.view(3, 4).mean(1).repeat_interleave(4))


def test_rloo_subtracts_the_mean_of_the_other_samples():
    adv = compute_advantages("rloo", REWARDS, 4)
    groups = REWARDS.view(3, 4)
    loo = torch.stack(
        [
            torch.stack([g[i] - torch.cat([g[:i], g[i + 1 :]]).mean() for i in range(4)])
            for g in groups
        ]
    )
    torch.testing.assert_close(adv, loo.view(-1))


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_group_of_equal_rewards_gets_exactly_zero_and_never_nan(name):
    adv = compute_advantages(name, REWARDS, 4, eps=0.0 if name != "grpo" else 1e-6)
    assert torch.equal(adv[4:8], torch.zeros(4))
    assert torch.isfinite(compute_advantages(name, torch.ones(6), 3)).all()


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_group_of_one_and_ragged_rewards_are_rejected(name):
    with pytest.raises(ValueError, match="group_size"):
        compute_advantages(name, torch.ones(4), 1)
    with pytest.raises(ValueError, match="multiple of group_size"):
        compute_advantages(name, torch.ones(5), 2)


def test_unknown_estimator_lists_known_ones():
    with pytest.raises(ValueError, match="rloo"):
        compute_advantages("gae", REWARDS, 4)
