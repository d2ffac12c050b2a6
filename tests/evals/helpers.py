"""Rows a finished job leaves behind, written straight into the real Postgres."""

from typing import Any

from sqlalchemy.orm import Session

from store.models import Checkpoint, EvalResult, Job, JobStatus, utcnow

Counts = list[tuple[str, int, int]]
"""(problem_id, num_samples, num_correct) per problem."""


def make_job(
    session: Session,
    *,
    kind: str = "eval",
    status: str = JobStatus.SUCCEEDED,
    metadata: dict[str, str] | None = None,
) -> Job:
    job = Job(
        kind=kind,
        status=status,
        spec={"resources": {"gpus": 0, "gpu_type": "any"}},
        queue="cpu",
        metadata_=metadata or {},
        finished_at=utcnow() if status == JobStatus.SUCCEEDED else None,
    )
    session.add(job)
    session.commit()
    return job


def add_results(
    session: Session, job_id: str, benchmark: str, counts: Counts, step: int | None = None
) -> None:
    problems: list[dict[str, Any]] = [
        {"problem_id": pid, "num_samples": n, "num_correct": c} for pid, n, c in counts
    ]
    k = counts[0][1]
    session.add(
        EvalResult(
            job_id=job_id,
            benchmark=benchmark,
            step=step,
            k=k,
            scores={f"avg@{k}": sum(c / n for _, n, c in counts) / len(counts)},
            per_problem={"problems": problems},
        )
    )
    session.commit()


def add_checkpoint(session: Session, job_id: str, step: int) -> None:
    session.add(
        Checkpoint(job_id=job_id, step=step, uri=f"/ckpt/{job_id}/{step}", sha256="0" * 64,
                   size_bytes=1)
    )  # fmt: skip
    session.commit()


def counts(correct: list[int], n: int = 4, prefix: str = "p") -> Counts:
    """Problems p0, p1, ... with `correct[i]` of `n` samples right."""
    return [(f"{prefix}{i}", n, c) for i, c in enumerate(correct)]
