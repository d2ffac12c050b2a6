"""Verifiable rewards: one registry (`REWARDS`) of name -> factory.

A reward scores a batch of response texts against their ground truths and returns one
float in [0, 1] per response (1.0 = correct). Rewards that own resources (the math
grader's process pool) release them in `close()`; the loop opens one per run. Whether a
truncated response (cut at max_response_tokens) may earn credit is the loop's rule
(`apply_truncation`), defaulting to each reward's `credits_truncated`.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from trainer.rewards.grading import Grader, last_boxed, last_number_verdict
from trainer.spec import AlgorithmConfig


class Reward(Protocol):
    credits_truncated: bool
    """Default for `algorithm.credit_truncated` when the spec leaves it unset."""

    def __call__(self, responses: Sequence[str], ground_truths: Sequence[str]) -> list[float]:
        """One score per response; never raises on a malformed response."""
        ...

    def close(self) -> None: ...


class MathReward:
    """1.0 when math-verify finds the response's answer equal to the ground truth, else 0.0;
    graded in a process pool with a per-answer deadline.

    `answer_format`: `boxed` (default) grades only the last `\\boxed{}` and gives 0 without
    one, as the DGPO code's MATH reward (verl `math_reward.compute_score`, last boxed only);
    `lenient` lets math-verify look for an answer anywhere in the text; `number` compares the
    last number literal of the text with the ground truth, no algebra (`19 + 15` is not 34:
    `trainer.rewards.grading.last_number_verdict`). A truncated response
    earns nothing by default ("I think it's 17, or maybe 42" is not an answer).
    """

    credits_truncated = False

    def __init__(
        self, answer_format: str = "boxed", num_workers: int | None = None, timeout_s: float = 10.0
    ) -> None:
        self.answer_format = answer_format
        self.grader = Grader(num_workers=num_workers, timeout_s=timeout_s)

    def __call__(self, responses: Sequence[str], ground_truths: Sequence[str]) -> list[float]:
        if self.answer_format == "number":
            pairs = zip(responses, ground_truths, strict=True)
            return [1.0 if last_number_verdict(r, t).correct else 0.0 for r, t in pairs]
        if self.answer_format == "lenient":
            verdicts = self.grader.grade(responses, ground_truths)
            return [1.0 if v.correct else 0.0 for v in verdicts]
        boxes = [last_boxed(response) for response in responses]
        graded = [i for i, box in enumerate(boxes) if box is not None]
        verdicts = self.grader.grade(
            [f"\\boxed{{{boxes[i]}}}" for i in graded], [ground_truths[i] for i in graded]
        )
        scores = [0.0] * len(responses)
        for i, verdict in zip(graded, verdicts, strict=True):
            scores[i] = 1.0 if verdict.correct else 0.0
        return scores

    def close(self) -> None:
        self.grader.close()


class ContainsReward:
    """1.0 when the ground truth string occurs in the response: the tiny model's toy task
    (learnable from random init in a few dozen steps, yet verifiable and prompt-dependent).
    Its responses are graded at a fixed length, so truncated ones earn credit by default."""

    credits_truncated = True

    def __call__(self, responses: Sequence[str], ground_truths: Sequence[str]) -> list[float]:
        return [
            1.0 if truth in resp else 0.0
            for resp, truth in zip(responses, ground_truths, strict=True)
        ]

    def close(self) -> None:
        pass


REWARDS: Mapping[str, Callable[[AlgorithmConfig], Reward]] = {
    "math": lambda algo: MathReward(answer_format=algo.answer_format),
    "contains": lambda algo: ContainsReward(),
}


def build_reward(algo: AlgorithmConfig) -> Reward:
    factory = REWARDS.get(algo.reward)
    if factory is None:
        raise ValueError(f"unknown reward {algo.reward!r}; choose one of {sorted(REWARDS)}")
    return factory(algo)


def apply_truncation(
    scores: Sequence[float], truncated: Sequence[bool], reward: Reward, algo: AlgorithmConfig
) -> list[float]:
    """Scores with truncated responses set to 0 unless the spec (or the reward) credits them."""
    credit = reward.credits_truncated if algo.credit_truncated is None else algo.credit_truncated
    return [s if credit or not cut else 0.0 for s, cut in zip(scores, truncated, strict=True)]
