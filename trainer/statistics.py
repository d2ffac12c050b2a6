"""The statistics of every comparison the service makes, numpy only (no torch), so the API
can import it: the paired bootstrap of `/evals/compare` and schedule verdicts, and the
seed-mean confidence intervals, Holm correction and Bonferroni-adjusted intervals of a
study's report.

Problems are the unit of resampling in the paired bootstrap: both runs answered the same
problems, so resampling problems (not samples) keeps the pairing and gives a CI for the
change in mean per-problem accuracy that reflects which problems the benchmark happens to
contain, the dominant noise on small sets such as AIME.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.results import Comparison, ProblemResult

# fmt: off
T_975 = (
    12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
    2.364624252, 2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
    2.160368656, 2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
    2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
    2.059538553, 2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456,
    2.039513446, 2.036933343, 2.034515297, 2.032244509, 2.030107928, 2.028094001,
    2.026192463, 2.024394164, 2.022690920, 2.021075390, 2.019540970, 2.018081703,
    2.016692199, 2.015367574, 2.014103389, 2.012895599, 2.011740514, 2.010634758,
    2.009575237, 2.008559112, 2.007583770, 2.006646805, 2.005745995, 2.004879288,
    2.004044783, 2.003240719, 2.002465459, 2.001717484, 2.000995378, 2.000297822,
    1.999623585, 1.998971517, 1.998340543,
)
# fmt: on
"""Student's t 0.975 quantile (two-sided 95 %) for 1-63 degrees of freedom: every study
size (at most 64 seeds). A table (from scipy.stats.t.ppf), so the API needs no scipy."""


def paired_bootstrap(
    a: Sequence[ProblemResult],
    b: Sequence[ProblemResult],
    *,
    benchmark: str = "",
    num_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Percentile bootstrap CI of mean(acc_b - acc_a) over problems present in both runs,
    and the two-sided bootstrap p-value of no difference."""
    acc_a = {p.problem_id: p.num_correct / p.num_samples for p in a}
    acc_b = {p.problem_id: p.num_correct / p.num_samples for p in b}
    shared = sorted(acc_a.keys() & acc_b.keys())
    if not shared:
        raise ValueError(
            f"runs share no problem ids on {benchmark or 'this benchmark'}; "
            "compare runs of the same benchmark"
        )
    xa = np.array([acc_a[i] for i in shared])
    xb = np.array([acc_b[i] for i in shared])
    diff = xb - xa
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(num_resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Comparison(
        benchmark=benchmark,
        num_problems=len(shared),
        accuracy_a=float(xa.mean()),
        accuracy_b=float(xb.mean()),
        difference=float(diff.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        p_value=bootstrap_p_value(means),
    )


def bootstrap_p_value(means: np.ndarray) -> float:
    """Two-sided: twice the smaller share of resampled means on either side of 0, at most 1
    (a change that is 0 on every problem gives 1)."""
    below, above = float((means <= 0).mean()), float((means >= 0).mean())
    return min(1.0, 2.0 * min(below, above))


def pooled_over_seeds(runs: Sequence[Sequence[ProblemResult]]) -> list[ProblemResult]:
    """One run's problems summed over seeds (problems every seed answered): its accuracy
    on a problem is then the mean over seeds of equal-k runs, so a paired bootstrap of two
    pooled arms compares them on the same problems and seeds."""
    by_seed = [{p.problem_id: p for p in run} for run in runs]
    shared = set.intersection(*(set(s) for s in by_seed)) if by_seed else set()
    return [
        ProblemResult(
            pid,
            sum(s[pid].num_samples for s in by_seed),
            sum(s[pid].num_correct for s in by_seed),
        )
        for pid in sorted(shared)
    ]


@dataclass(frozen=True)
class MeanCI:
    """Mean across seeds with a two-sided 95 % Student-t interval (None from one seed)."""

    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int


def mean_ci(values: Sequence[float]) -> MeanCI:
    """The seeds' mean and 95 % t-interval: mean ± t(n-1) · sd / sqrt(n)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, None, None, n)
    t = T_975[n - 2] if n - 1 <= len(T_975) else 1.959963985  # the normal quantile
    half = t * float(x.std(ddof=1)) / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n)


def holm(p_values: Sequence[float], alpha: float) -> tuple[list[float], list[bool]]:
    """Holm's step-down correction: (adjusted p-values, rejected at family-wise `alpha`),
    in the input order. Adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j))."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted, [p <= alpha for p in adjusted]


def bonferroni_intervals(
    pairs: Sequence[tuple[Sequence[ProblemResult], Sequence[ProblemResult]]],
    alpha: float,
    *,
    num_resamples: int = 10_000,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Simultaneous intervals for m paired comparisons `(a, b)`: each one's percentile
    paired bootstrap interval (the same resamples as its uncorrected one) at level
    1 - alpha/m, so all m cover their differences at once with probability >= 1 - alpha,
    whatever their dependence (Bonferroni's inequality; Dunn 1961).

    Why not intervals compatible with Holm's step-down test itself (Strassburger & Bretz
    2008, Stat. Med. 27:4914): for every comparison Holm rejects, unless it rejects them
    all, their bound is 0 whatever the estimate, which tells a reader no more than the
    verdict. Bonferroni's intervals keep a width and agree with the Holm verdicts one way:
    an interval that excludes 0 means p <= alpha/m, so Holm rejects in that direction (up
    to the interpolation between neighbouring resamples); Holm, being step-down, may also
    reject a comparison whose interval touches 0. With few resamples in a tail
    (alpha/(2m) x num_resamples), the ends are noisy."""
    level = 1.0 - alpha / max(1, len(pairs))
    found = []
    for a, b in pairs:
        c = paired_bootstrap(a, b, num_resamples=num_resamples, confidence=level, seed=seed)
        found.append((c.ci_low, c.ci_high))
    return found
