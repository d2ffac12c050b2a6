"""Reward strictness: the answer format is the spec's (boxed-only by default, as the DGPO
code's MATH reward), and truncated responses earn nothing unless the spec credits them."""

from collections.abc import Iterator

import pytest

from trainer.rewards.registry import MathReward, apply_truncation, build_reward
from trainer.spec import AlgorithmConfig

RESPONSES = [
    "I think it's 17, or maybe 42",
    "So the answer is $\\boxed{42}$.",
    "First \\boxed{17}, on reflection \\boxed{42}",
    "The answer is 42.",
    "\\boxed{17}",
]
TRUTHS = ["42"] * len(RESPONSES)


@pytest.fixture(scope="module")
def boxed() -> Iterator[MathReward]:
    reward = MathReward(answer_format="boxed", num_workers=1)
    yield reward
    reward.close()


def test_boxed_format_grades_only_the_last_box(boxed: MathReward) -> None:
    assert boxed(RESPONSES, TRUTHS) == [0.0, 1.0, 1.0, 0.0, 0.0]


def test_lenient_format_reads_an_unboxed_final_answer() -> None:
    reward = MathReward(answer_format="lenient", num_workers=1)
    try:
        assert reward(RESPONSES[1:], TRUTHS[1:]) == [1.0, 1.0, 1.0, 0.0]
    finally:
        reward.close()


def test_math_reward_is_boxed_by_default_from_the_spec() -> None:
    reward = build_reward(AlgorithmConfig())
    try:
        assert isinstance(reward, MathReward) and reward.answer_format == "boxed"
    finally:
        reward.close()


@pytest.mark.parametrize(
    "algorithm,expected",
    [
        ({"reward": "math"}, [1.0, 0.0]),
        ({"reward": "math", "credit_truncated": True}, [1.0, 1.0]),
        ({"reward": "contains"}, [1.0, 1.0]),
        ({"reward": "contains", "credit_truncated": False}, [1.0, 0.0]),
    ],
)
def test_truncated_responses_earn_nothing_unless_credited(algorithm, expected) -> None:
    algo = AlgorithmConfig(**algorithm)
    reward = build_reward(algo)
    try:
        assert apply_truncation([1.0, 1.0], [False, True], reward, algo) == expected
    finally:
        reward.close()
