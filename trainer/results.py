"""Evaluation results as plain data: what an eval run returns and workers store, and how
two runs compare (one model for the trainer's statistics, the store and the API)."""

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class SampleVerdict:
    """One graded completion: the answer extracted from it and whether it was right."""

    extracted: str | None
    correct: bool


@dataclass(frozen=True)
class ProblemResult:
    problem_id: str
    num_samples: int
    num_correct: int
    samples: list[SampleVerdict] = field(default_factory=list)


@dataclass(frozen=True)
class BenchmarkResult:
    """Scores of one model on one benchmark.

    `scores` holds `avg@k` and `pass@j` for every requested j; `per_problem` keeps
    the correct counts so two runs can be compared problem by problem.
    """

    benchmark: str
    k: int
    scores: dict[str, float]
    per_problem: list[ProblemResult]

    @property
    def num_problems(self) -> int:
        return len(self.per_problem)

    def as_metrics(self) -> dict[str, float]:
        """The scores as train metrics `eval/<benchmark>/<score>`: a periodic eval's
        report at its step, which a study's report draws as curves."""
        return {f"{EVAL_METRIC_PREFIX}{self.benchmark}/{k}": v for k, v in self.scores.items()}


EVAL_METRIC_PREFIX = "eval/"
"""Of the train metrics that are a periodic eval's scores (`BenchmarkResult.as_metrics`)."""


Verdict = Literal["pass", "regression", "improvement"]
"""`regression`/`improvement` only when the CI excludes 0 and |change| >= the threshold."""


class Comparison(BaseModel):
    """Run `b` minus run `a` on one benchmark, over the problems both answered."""

    model_config = ConfigDict(frozen=True)

    benchmark: str
    num_problems: int
    """Problems answered by both runs (matched by problem id)."""
    accuracy_a: float
    accuracy_b: float
    difference: float
    """accuracy_b - accuracy_a: mean per-problem accuracy (Avg@k) over the shared problems."""
    ci_low: float
    ci_high: float
    confidence: float
    """Of the paired bootstrap interval [ci_low, ci_high] of `difference`."""
    p_value: float | None = None
    """Two-sided bootstrap p-value of no difference (the share of resampled differences on
    the far side of 0, doubled); None in comparisons stored before it was reported."""


class BenchmarkComparison(Comparison):
    """A comparison of two jobs' stored results, as the API and schedule runs show it."""

    step_a: int | None
    step_b: int | None
    """Training step of a train job's periodic eval; None for an eval job."""
    verdict: Verdict
