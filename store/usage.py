"""Usage accounting: each attempt's wall and GPU seconds, and their sums per job,
principal and queue over a window (`GET /usage`, `dgpo usage`, fair share).

An attempt is recorded once, when its job leaves `running`/`cancelling`
(`store.lifecycle.transition`), from the claim's `attempt_started_at` to that moment.
GPU-seconds are wall seconds times the GPUs the job requested, which is what its slot
held; a CPU job (`gpus: 0`) uses none.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select
from sqlalchemy.orm import Session

from store.models import AttemptUsage, Job, utcnow

USAGE = AttemptUsage.__table__


def job_shape(spec: dict) -> tuple[int, str]:
    """(GPUs, GPU type) a job's spec asks for; a CPU job is (0, "cpu")."""
    resources = spec.get("resources") or {}
    gpus = int(resources.get("gpus", 0))
    return gpus, (str(resources.get("gpu_type", "any")) if gpus else "cpu")


def record(session: Session, job: Job, outcome: str, now: datetime) -> None:
    """Append the usage of `job`'s attempt that ends now with `outcome` (the new status)."""
    started = job.attempt_started_at or job.started_at or now
    wall = max(0.0, (now - started).total_seconds())
    gpus, gpu_type = job_shape(job.spec)
    session.execute(
        insert(USAGE).values(
            job_id=job.id,
            attempt=job.attempt,
            owner=job.owner,
            queue=job.queue,
            gpu_type=gpu_type,
            gpus=gpus,
            worker=job.lease_owner,
            outcome=outcome,
            started_at=started,
            ended_at=now,
            wall_seconds=wall,
            gpu_seconds=wall * gpus,
        )
    )


@dataclass(frozen=True)
class UsageRow:
    """Sums over the attempts that ended in the window, for one group."""

    key: str
    attempts: int
    wall_seconds: float
    gpu_seconds: float


GROUPS = {"job": USAGE.c.job_id, "principal": USAGE.c.owner, "queue": USAGE.c.queue}


def summed(
    session: Session,
    by: str,
    since: datetime,
    until: datetime | None = None,
    owner: str | None = None,
) -> list[UsageRow]:
    """Attempts ended in [since, until) summed per `by` (job, principal or queue); only
    `owner`'s when given."""
    key = GROUPS[by]
    stmt = (
        select(key, func.count(), func.sum(USAGE.c.wall_seconds), func.sum(USAGE.c.gpu_seconds))
        .where(USAGE.c.ended_at >= since, USAGE.c.ended_at < (until or utcnow()))
        .group_by(key)
        .order_by(key)
    )
    if owner is not None:
        stmt = stmt.where(USAGE.c.owner == owner)
    return [UsageRow(k, n, float(w or 0), float(g or 0)) for k, n, w, g in session.execute(stmt)]


def totals(session: Session) -> list[Any]:
    """All-time (owner, queue, gpu_type, wall_seconds, gpu_seconds) sums: the Prometheus
    counters (rows are only ever appended, so the sums never decrease)."""
    return list(
        session.execute(
            select(
                USAGE.c.owner,
                USAGE.c.queue,
                USAGE.c.gpu_type,
                func.sum(USAGE.c.wall_seconds).label("wall_seconds"),
                func.sum(USAGE.c.gpu_seconds).label("gpu_seconds"),
            ).group_by(USAGE.c.owner, USAGE.c.queue, USAGE.c.gpu_type)
        )
    )


def recent_gpu_seconds(
    session: Session, owners: Sequence[str], since: datetime
) -> dict[str, float]:
    """Per owner: GPU-equivalent seconds of attempts ended since `since` (a CPU job's
    second counts as one, so CPU-only principals are shared fairly too)."""
    units = case((USAGE.c.gpus > 0, USAGE.c.gpus), else_=1)
    rows = session.execute(
        select(USAGE.c.owner, func.sum(USAGE.c.wall_seconds * units))
        .where(USAGE.c.ended_at >= since, USAGE.c.owner.in_(owners))
        .group_by(USAGE.c.owner)
    )
    return {owner: float(total or 0) for owner, total in rows}
