"""The shared statistics against scipy, numpy and by-hand values: seed-mean t-intervals,
Holm's correction, Bonferroni's simultaneous intervals, seed pooling and the bootstrap
p-value."""

import random

import numpy as np
import pytest
from scipy import stats

from trainer.results import ProblemResult
from trainer.statistics import (
    bonferroni_intervals,
    holm,
    mean_ci,
    paired_bootstrap,
    pooled_over_seeds,
)


@pytest.mark.parametrize("n", [2, 3, 5, 17, 64])
def test_mean_ci_is_scipys_t_interval(n):
    rng = random.Random(n)
    values = [rng.gauss(0.4, 0.1) for _ in range(n)]
    low, high = stats.t.interval(0.95, n - 1, loc=np.mean(values), scale=stats.sem(values))
    got = mean_ci(values)
    assert (got.mean, got.n) == (pytest.approx(np.mean(values)), n)
    assert (got.ci_low, got.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_one_seed_has_no_interval():
    assert mean_ci([0.3]) == mean_ci([0.3]).__class__(0.3, None, None, 1)


def test_holm_steps_down_and_keeps_order():
    # p sorted: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04): all <= 0.05.
    adjusted, rejected = holm([0.04, 0.01, 0.02], 0.05)
    assert adjusted == pytest.approx([0.04, 0.03, 0.04]) and rejected == [True] * 3
    # A monotone max: 0.03 x 2 = 0.06 stops the step-down, so 0.04 is not rejected either.
    adjusted, rejected = holm([0.005, 0.03, 0.04], 0.05)
    assert adjusted == pytest.approx([0.015, 0.06, 0.06]) and rejected == [True, False, False]


def test_pooling_sums_each_problem_over_seeds_that_all_answered():
    seed1 = [ProblemResult("a", 4, 1), ProblemResult("b", 4, 4), ProblemResult("c", 4, 0)]
    seed2 = [ProblemResult("a", 4, 3), ProblemResult("b", 4, 2)]
    assert pooled_over_seeds([seed1, seed2]) == [ProblemResult("a", 8, 4), ProblemResult("b", 8, 6)]


def test_a_clear_change_has_a_small_p_value_and_no_change_has_p_1():
    same = [ProblemResult(str(i), 4, i % 5) for i in range(40)]
    better = [ProblemResult(str(i), 4, 4) for i in range(40)]
    assert paired_bootstrap(same, same).p_value == 1.0
    assert paired_bootstrap(same, better).p_value < 0.001


def test_bonferroni_intervals_are_the_bootstrap_percentiles_at_one_minus_alpha_over_m():
    rng = random.Random(7)
    base = [ProblemResult(str(i), 4, rng.randint(0, 4)) for i in range(50)]
    pairs = [
        (base, [ProblemResult(str(i), 4, min(4, p.num_correct + gain)) for i, p in enumerate(base)])
        for gain in (0, 1, 2)
    ]
    got = bonferroni_intervals(pairs, 0.05, num_resamples=4000)
    p_values = [paired_bootstrap(a, b, num_resamples=4000).p_value or 0.0 for a, b in pairs]
    _, rejected = holm(p_values, 0.05)
    for (a, b), (low, high), reject in zip(pairs, got, rejected, strict=True):
        before, after = ({p.problem_id: p.num_correct / 4 for p in run} for run in (a, b))
        diff = np.array([after[i] - before[i] for i in sorted(before)])  # ids in sorted order
        idx = np.random.default_rng(0).integers(0, len(diff), size=(4000, len(diff)))
        want = np.quantile(diff[idx].mean(axis=1), [0.05 / 3 / 2, 1 - 0.05 / 3 / 2])
        assert (low, high) == (pytest.approx(want[0]), pytest.approx(want[1]))
        uncorrected = paired_bootstrap(a, b, num_resamples=4000)
        assert low <= uncorrected.ci_low and uncorrected.ci_high <= high
        assert not (low > 0 or high < 0) or reject  # excluding 0 implies Holm's rejection
    assert got[0] == (0.0, 0.0) and got[2][0] > 0
    # One comparison at alpha 0.05 is the uncorrected 95 % interval.
    alone = paired_bootstrap(*pairs[1], num_resamples=4000)
    assert bonferroni_intervals(pairs[1:2], 0.05, num_resamples=4000) == [
        (alone.ci_low, alone.ci_high)
    ]
