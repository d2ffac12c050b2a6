"""Compare two eval runs problem by problem: paired bootstrap CI and a verdict.

Problems are the unit of resampling: both runs answered the same problems, so
resampling problems (not samples) keeps the pairing and gives a CI for the change
in mean per-problem accuracy that reflects which problems the benchmark happens
to contain, the dominant noise on small sets such as AIME.
"""

from collections.abc import Sequence

import numpy as np

from trainer.results import BenchmarkResult, Comparison, ProblemResult, Verdict


def paired_bootstrap(
    a: Sequence[ProblemResult],
    b: Sequence[ProblemResult],
    *,
    benchmark: str = "",
    num_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Percentile bootstrap CI of mean(acc_b - acc_a) over problems present in both runs."""
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
    )


def compare_results(
    a: Sequence[BenchmarkResult],
    b: Sequence[BenchmarkResult],
    *,
    num_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Comparison]:
    """One comparison per benchmark present in both runs, in `a`'s order."""
    by_name = {r.benchmark: r for r in b}
    return [
        paired_bootstrap(
            r.per_problem,
            by_name[r.benchmark].per_problem,
            benchmark=r.benchmark,
            num_resamples=num_resamples,
            confidence=confidence,
            seed=seed,
        )
        for r in a
        if r.benchmark in by_name
    ]


def verdict(comparison: Comparison, threshold: float = 0.0) -> Verdict:
    """`regression`/`improvement` only when the CI excludes 0 and |change| >= threshold."""
    if comparison.ci_high < 0 and comparison.difference <= -threshold:
        return "regression"
    if comparison.ci_low > 0 and comparison.difference >= threshold:
        return "improvement"
    return "pass"


def overall_verdict(comparisons: Sequence[Comparison], threshold: float = 0.0) -> Verdict:
    """Any benchmark regressing is a regression; else any improving is an improvement."""
    verdicts = {verdict(c, threshold) for c in comparisons}
    if "regression" in verdicts:
        return "regression"
    return "improvement" if "improvement" in verdicts else "pass"
