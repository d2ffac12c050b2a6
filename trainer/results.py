"""Evaluation results as plain data: what an eval run returns and workers store."""

from dataclasses import dataclass, field


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
