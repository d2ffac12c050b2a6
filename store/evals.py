"""Compare two jobs' stored eval results, problem by problem, with a paired bootstrap.

One implementation serves `GET /evals/compare` and the schedule verdicts (workers call
`compare_jobs` too). The comparison model is `trainer.results` (plain data); the statistics
live in `trainer.statistics` (numpy only, shared with studies), imported inside the
function, never at app start-up, so `service.app` stays torch-free and small.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import BadRequest
from store.jobs import get_job
from store.models import EvalResult
from trainer.results import BenchmarkComparison, ProblemResult, Verdict

CONFIDENCE = 0.95
RESAMPLES = 10_000


def latest_results(
    session: Session, job_id: str, benchmark: str | None = None
) -> dict[str, EvalResult]:
    """Per benchmark, the eval job's result (step None) or a train job's latest periodic one."""
    stmt = select(EvalResult).where(EvalResult.job_id == job_id)
    if benchmark is not None:
        stmt = stmt.where(EvalResult.benchmark == benchmark)
    picked: dict[str, EvalResult] = {}
    for row in session.scalars(stmt):
        current = picked.get(row.benchmark)
        if current is None or _rank(row) > _rank(current):
            picked[row.benchmark] = row
    return picked


def _rank(row: EvalResult) -> float:
    return float("inf") if row.step is None else row.step


def _problems(row: EvalResult) -> list[ProblemResult]:
    return [
        ProblemResult(str(p["problem_id"]), int(p["num_samples"]), int(p["num_correct"]))
        for p in row.per_problem.get("problems", [])
        if p.get("num_samples")
    ]


def compare_jobs(
    session: Session,
    job_a: str,
    job_b: str,
    *,
    benchmark: str | None = None,
    threshold: float = 0.0,
    seed: int = 0,
    owner: str | None = None,
) -> tuple[list[dict[str, Any]], Verdict]:
    """(per-benchmark comparisons of b minus a, overall verdict): each comparison is a
    `BenchmarkComparison` as JSON data, which schedule runs and webhooks store as is.

    Raises NotFound for an unknown job (or one `owner` does not own) and BadRequest when
    the jobs share no benchmark or no problem, so the API answers 404/422 and a schedule
    run records why.
    """
    from trainer.evaluation.compare import overall_verdict, verdict
    from trainer.statistics import paired_bootstrap

    for job_id in (job_a, job_b):
        get_job(session, job_id, owner=owner)
    rows_a = latest_results(session, job_a, benchmark)
    rows_b = latest_results(session, job_b, benchmark)
    where = f" on benchmark {benchmark!r}" if benchmark else ""
    for param, job_id, rows in (("a", job_a, rows_a), ("b", job_b, rows_b)):
        if not rows:
            raise BadRequest(
                f"job {job_id} has no eval results{where}; wait until it succeeds "
                "(GET /jobs/{id}/results lists what it has)",
                ("query", param),
            )
    shared = sorted(rows_a.keys() & rows_b.keys())
    if not shared:
        raise BadRequest(
            f"jobs {job_a} ({', '.join(sorted(rows_a))}) and {job_b} "
            f"({', '.join(sorted(rows_b))}) share no benchmark; compare runs of the same one",
            ("query", "benchmark"),
        )
    comparisons = []
    for name in shared:
        try:
            comparisons.append(
                paired_bootstrap(
                    _problems(rows_a[name]),
                    _problems(rows_b[name]),
                    benchmark=name,
                    num_resamples=RESAMPLES,
                    confidence=CONFIDENCE,
                    seed=seed,
                )
            )
        except ValueError as exc:  # no shared problem ids
            raise BadRequest(str(exc), ("query", "benchmark")) from exc
    steps = {name: (rows_a[name].step, rows_b[name].step) for name in shared}
    out = [
        BenchmarkComparison(
            **c.model_dump(),
            step_a=steps[c.benchmark][0],
            step_b=steps[c.benchmark][1],
            verdict=verdict(c, threshold),
        ).model_dump()
        for c in comparisons
    ]
    return out, overall_verdict(comparisons, threshold)


def summarize(comparisons: Sequence[dict[str, Any]]) -> str:
    """One line per benchmark, for events and webhooks: `math500 -0.120 [-0.180, -0.060]`."""
    return "; ".join(
        f"{c['benchmark']} {c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
        for c in comparisons
    )
