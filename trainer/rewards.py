"""Verifiable rewards: one registry (`REWARDS`) of name -> factory.

A reward scores a batch of response texts against their ground truths and returns one
float in [0, 1] per response (1.0 = correct). Rewards that own resources (the math
grader's process pool) release them in `close()`; the loop opens one per run.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from trainer.grading import Grader


class Reward(Protocol):
    def __call__(self, responses: Sequence[str], ground_truths: Sequence[str]) -> list[float]:
        """One score per response; never raises on a malformed response."""
        ...

    def close(self) -> None: ...


class MathReward:
    """1.0 when math-verify finds the response's answer (`\\boxed{}` first) equal to the
    ground truth, else 0.0; graded in a process pool with a per-answer deadline."""

    def __init__(self, num_workers: int | None = None, timeout_s: float = 10.0) -> None:
        self.grader = Grader(num_workers=num_workers, timeout_s=timeout_s)

    def __call__(self, responses: Sequence[str], ground_truths: Sequence[str]) -> list[float]:
        verdicts = self.grader.grade(responses, ground_truths)
        return [1.0 if v.correct else 0.0 for v in verdicts]

    def close(self) -> None:
        self.grader.close()


class ContainsReward:
    """1.0 when the ground truth string occurs in the response: the tiny model's toy task
    (learnable from random init in a few dozen steps, yet verifiable and prompt-dependent)."""

    def __call__(self, responses: Sequence[str], ground_truths: Sequence[str]) -> list[float]:
        return [
            1.0 if truth in resp else 0.0
            for resp, truth in zip(responses, ground_truths, strict=True)
        ]

    def close(self) -> None:
        pass


REWARDS: Mapping[str, Callable[[], Reward]] = {
    "math": MathReward,
    "contains": ContainsReward,
}


def build_reward(name: str) -> Reward:
    factory = REWARDS.get(name)
    if factory is None:
        raise ValueError(f"unknown reward {name!r}; choose one of {sorted(REWARDS)}")
    return factory()
