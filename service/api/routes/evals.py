"""`/evals/compare`: how job b differs from job a, per benchmark, with a paired bootstrap CI."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from service.api.deps import ReadToken, SessionDep
from service.schemas import ErrorOut
from store import evals
from trainer.results import BenchmarkComparison, Verdict

router = APIRouter(prefix="/evals", tags=["evals"])

JobId = Annotated[str, Query(min_length=1, max_length=36, pattern=r"^[^\x00]*$")]


class CompareOut(BaseModel):
    a: str
    b: str
    threshold: float
    verdict: Verdict
    """Any benchmark regressing is a regression; else any improving is an improvement."""
    benchmarks: list[BenchmarkComparison]


@router.get(
    "/compare",
    response_model=CompareOut,
    responses={
        404: {"model": ErrorOut, "description": "unknown job id"},
        422: {"description": "invalid parameters, no results, or no shared benchmark/problem"},
    },
)
def compare(
    a: JobId,
    b: JobId,
    session: SessionDep,
    token: ReadToken,
    benchmark: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$")] = None,
    threshold: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
) -> CompareOut:
    """Per benchmark both jobs scored: b minus a, with a 95% paired bootstrap CI over problems."""
    rows, overall = evals.compare_jobs(
        session, a, b, benchmark=benchmark, threshold=threshold, owner=token.visible_owner
    )
    benchmarks = [BenchmarkComparison.model_validate(r) for r in rows]
    return CompareOut(a=a, b=b, threshold=threshold, verdict=overall, benchmarks=benchmarks)
