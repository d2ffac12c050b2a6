"""The spec's reward names (validated at submit, torch-free) are exactly the registry's."""

from trainer.rewards.registry import REWARDS
from trainer.spec import REWARD_NAMES


def test_spec_reward_names_match_the_reward_registry() -> None:
    assert set(REWARD_NAMES) == set(REWARDS)
