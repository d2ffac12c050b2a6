"""Avg@k by hand, Pass@k against brute-force enumeration of k-subsets."""

from itertools import combinations

import pytest

from trainer.evaluation.scores import (
    average_scores,
    avg_at_k,
    benchmark_scores,
    mean_pass_at_k,
    pass_at_k,
)
from trainer.results import ProblemResult


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) with a correct one."""
    subsets = list(combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration_over_all_subsets(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n() -> None:
    # C(1024, 512) overflows a float; the product form does not.
    assert pass_at_k(1024, 1, 512) == pytest.approx(0.5)
    assert pass_at_k(1024, 0, 512) == 0.0
    assert pass_at_k(1024, 600, 512) == 1.0


def test_pass_at_1_is_the_fraction_correct() -> None:
    assert pass_at_k(32, 8, 1) == pytest.approx(0.25)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, 2, 0), (4, 2, 5), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def problems(*correct: int, n: int = 4) -> list[ProblemResult]:
    return [ProblemResult(f"p{i}", n, c) for i, c in enumerate(correct)]


def test_avg_at_k_by_hand() -> None:
    # (4/4 + 2/4 + 0/4) / 3 = 0.5 ; (1/4 + 1/4) / 2 = 0.25
    assert avg_at_k(problems(4, 2, 0)) == pytest.approx(0.5)
    assert avg_at_k(problems(1, 1)) == pytest.approx(0.25)


def test_benchmark_scores_name_avg_and_each_pass_k() -> None:
    scores = benchmark_scores(problems(4, 2, 0), [1, 2, 4])
    # pass@2 with n=4: c=4 -> 1, c=2 -> 1 - C(2,2)/C(4,2) = 5/6, c=0 -> 0
    assert scores == pytest.approx(
        {"avg@4": 0.5, "pass@1": 0.5, "pass@2": (1 + 5 / 6) / 3, "pass@4": 2 / 3}
    )
    assert mean_pass_at_k(problems(4, 2, 0), 4) == pytest.approx(2 / 3)


def test_average_scores_is_the_unweighted_mean_of_shared_keys() -> None:
    avg = average_scores([{"avg@4": 0.2, "pass@4": 0.5}, {"avg@4": 0.4, "pass@1": 0.9}])
    assert avg == pytest.approx({"avg@4": 0.3})
