"""Paired bootstrap over problems and the pass/regression/improvement verdict."""

import random

import pytest

from trainer.evaluation.compare import compare_results, overall_verdict, verdict
from trainer.results import BenchmarkResult, ProblemResult
from trainer.statistics import paired_bootstrap


def run(correct: list[int], n: int = 8) -> list[ProblemResult]:
    return [ProblemResult(f"p{i}", n, c) for i, c in enumerate(correct)]


def noisy_counts(p: float, num: int, seed: int, n: int = 8) -> list[int]:
    rng = random.Random(seed)
    return [sum(rng.random() < p for _ in range(n)) for _ in range(num)]


def test_identical_runs_give_a_ci_containing_zero_and_pass() -> None:
    a = run(noisy_counts(0.5, 100, seed=1))
    cmp = paired_bootstrap(a, a)
    assert cmp.difference == 0.0
    assert cmp.ci_low <= 0.0 <= cmp.ci_high
    assert verdict(cmp) == "pass"


def test_clearly_worse_run_is_a_regression() -> None:
    good = run(noisy_counts(0.7, 100, seed=2))
    bad = run(noisy_counts(0.3, 100, seed=3))
    cmp = paired_bootstrap(good, bad)
    assert cmp.ci_high < 0
    assert cmp.difference == pytest.approx(cmp.accuracy_b - cmp.accuracy_a)
    assert verdict(cmp, threshold=0.05) == "regression"
    assert verdict(paired_bootstrap(bad, good), threshold=0.05) == "improvement"


def test_significant_change_below_threshold_is_a_pass() -> None:
    a = run([4] * 50)
    b = run([5] * 50)  # +1/8 on every problem: significant, but under a 0.2 threshold
    cmp = paired_bootstrap(a, b)
    assert cmp.ci_low > 0
    assert verdict(cmp, threshold=0.2) == "pass"
    assert verdict(cmp, threshold=0.1) == "improvement"


def test_two_run_noise_on_the_same_model_is_usually_a_pass() -> None:
    same_model = [
        paired_bootstrap(run(noisy_counts(0.5, 60, s)), run(noisy_counts(0.5, 60, s + 100)))
        for s in range(20)
    ]
    false_alarms = sum(verdict(c) != "pass" for c in same_model)
    assert false_alarms <= 4  # 5% expected; 4 of 20 would be very unlikely


def test_only_shared_problems_are_paired() -> None:
    a = run([8, 0, 8])
    b = [ProblemResult("p0", 8, 8), ProblemResult("other", 8, 0)]
    cmp = paired_bootstrap(a, b)
    assert cmp.num_problems == 1
    with pytest.raises(ValueError, match="share no problem ids"):
        paired_bootstrap(run([1]), [ProblemResult("x", 8, 1)])


def test_compare_results_pairs_benchmarks_by_name_and_overall_verdict() -> None:
    a = [
        BenchmarkResult("aime24", 8, {}, run([8] * 30)),
        BenchmarkResult("amc23", 8, {}, run([4] * 40)),
    ]
    b = [
        BenchmarkResult("amc23", 8, {}, run([4] * 40)),
        BenchmarkResult("aime24", 8, {}, run([0] * 30)),
    ]
    comparisons = compare_results(a, b)
    assert [c.benchmark for c in comparisons] == ["aime24", "amc23"]
    assert [verdict(c) for c in comparisons] == ["regression", "pass"]
    assert overall_verdict(comparisons) == "regression"
