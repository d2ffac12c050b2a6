"""The built-in arithmetic task: disjoint, deterministic splits graded by the math reward."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer.benchmarks import load_benchmark
from trainer.data import arith
from trainer.data.builtins import resolve
from trainer.rewards.registry import MathReward
from trainer.spec import EvalSpec


@pytest.fixture(scope="module")
def lenient() -> Iterator[MathReward]:
    reward = MathReward(answer_format="lenient", num_workers=1)
    yield reward
    reward.close()


def _pair(problem: str) -> frozenset[str]:
    a, _, b = problem.removeprefix("What is ").removesuffix("?").partition(" + ")
    return frozenset((a, b))


def test_the_splits_are_disjoint_in_either_order_and_cover_every_other_sum() -> None:
    train, test = arith.train_rows(), arith.test_rows()
    assert len(test) == arith.TEST_SIZE
    assert {_pair(r["problem"]) for r in train}.isdisjoint(_pair(r["problem"]) for r in test)
    held_out = {_pair(r["problem"]) for r in test}
    ordered = arith.OPERAND_MAX**2
    assert len(train) == ordered - sum(2 if len(p) == 2 else 1 for p in held_out)
    assert len({r["id"] for r in train + test}) == len(train) + len(test)


def test_the_splits_are_the_same_on_every_call_and_machine() -> None:
    assert arith.test_rows() == arith.test_rows()
    assert arith.test_rows()[:2] == [
        {"id": "arith-test-19+15", "problem": "What is 19 + 15?", "answer": "34"},
        {"id": "arith-test-19+2", "problem": "What is 19 + 2?", "answer": "21"},
    ]


def test_builtin_names_load_the_train_file_and_the_test_benchmark() -> None:
    path = Path(resolve("arith"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == arith.train_rows()
    problems = load_benchmark("arith-test")
    assert [(p.id, p.problem, p.answer) for p in problems] == [
        (r["id"], r["problem"], r["answer"]) for r in arith.test_rows()
    ]


def test_the_lenient_math_reward_grades_the_last_number(lenient: MathReward) -> None:
    responses = ["28", "15 + 13 = 28", "15 + 13 = 28\n\nThis is a classic", "15 + 13 = 8"]
    assert lenient(responses, ["28"] * 4) == [1.0, 1.0, 1.0, 0.0]


def test_the_number_format_does_not_credit_an_echoed_sum(lenient: MathReward) -> None:
    """bench/learning.py's first run: the policy learned to answer `19 + 15`, which
    math-verify equates with 34 (docs/learning.md); `number` wants the number itself."""
    assert lenient(["19 + 15"], ["34"]) == [1.0]
    number = MathReward(answer_format="number")
    responses = ["19 + 15", "19 + 15 = 34", "34", "3,4", "no number", "34.0"]
    assert number(responses, ["34"] * 6) == [0.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    spec = EvalSpec.model_validate(
        {"model": {"path": "m"}, "benchmarks": ["arith-test"], "answer_format": "number"}
    )
    assert spec.answer_format == "number"
