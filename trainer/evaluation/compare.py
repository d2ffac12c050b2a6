"""Compare two eval runs benchmark by benchmark and give a verdict; the statistics (the
paired bootstrap) are `trainer.statistics`, shared with studies."""

from collections.abc import Sequence

from trainer.results import BenchmarkResult, Comparison, Verdict
from trainer.statistics import paired_bootstrap


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
