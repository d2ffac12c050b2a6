"""Reads of what a job produced: events, metric series (downsampled), checkpoints, results."""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from store.models import Checkpoint, EvalResult, JobEvent, Metric


def events(session: Session, job_id: str, after_id: int, limit: int) -> Sequence[JobEvent]:
    stmt = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return session.scalars(stmt).all()


def metric_series(
    session: Session,
    job_id: str,
    *,
    names: Sequence[str] = (),
    min_step: int | None = None,
    max_step: int | None = None,
    max_points: int = 500,
) -> tuple[int, list[dict[str, Any]]]:
    """(rows in range, at most `max_points` evenly strided rows incl. the last one).

    The stride is applied in SQL with row_number(), so a million-step run never
    leaves the database whole.
    """
    where = [Metric.job_id == job_id]
    if min_step is not None:
        where.append(Metric.step >= min_step)
    if max_step is not None:
        where.append(Metric.step <= max_step)
    total = session.scalar(select(func.count()).select_from(Metric).where(*where)) or 0
    stride = max(1, -(-total // max_points))
    ranked = select(
        Metric.step,
        Metric.values,
        Metric.ts,
        func.row_number().over(order_by=Metric.step).label("rn"),
    ).where(*where)
    sub = ranked.subquery()
    keep = ((sub.c.rn - 1) % stride == 0) | (sub.c.rn == total)
    rows = session.execute(
        select(sub.c.step, sub.c["values"], sub.c.ts).where(keep).order_by(sub.c.step)
    ).all()
    if stride > 1 and len(rows) > max_points:
        rows = [*rows[: max_points - 1], rows[-1]]
    wanted = set(names)
    points = [
        {
            "step": step,
            "values": {k: v for k, v in values.items() if not wanted or k in wanted},
            "ts": ts,
        }
        for step, values, ts in rows
    ]
    return total, points


class SavedCheckpoint(BaseModel):
    """A checkpoint row with the metrics its step reported; the API answers it field for
    field (`service.schemas.CheckpointOut`), so the fields are listed here only."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    job_id: str
    step: int
    uri: str
    sha256: str
    size_bytes: int
    attempt: int
    created_at: datetime
    metrics: dict[str, Any] | None
    """The metrics reported for this step (reward, KL, ...), to pick a checkpoint by; None
    when the step reported none. Read from the metrics table, not copied."""


def checkpoints(session: Session, job_id: str) -> list[SavedCheckpoint]:
    columns = [
        getattr(Checkpoint, name) for name in SavedCheckpoint.model_fields if name != "metrics"
    ]
    stmt = (
        select(*columns, Metric.values.label("metrics"))
        .outerjoin(Metric, (Metric.job_id == Checkpoint.job_id) & (Metric.step == Checkpoint.step))
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.step)
    )
    return [SavedCheckpoint.model_validate(row._mapping) for row in session.execute(stmt)]


def newest_checkpoints(session: Session, job_ids: Collection[str]) -> dict[str, tuple[int, str]]:
    """(step, uri) of each job's newest checkpoint, for the jobs that saved one: the job's
    result pointer (its final checkpoint once it succeeded). One query for a page."""
    if not job_ids:
        return {}
    newest = (
        select(Checkpoint.job_id, func.max(Checkpoint.step))
        .where(Checkpoint.job_id.in_(job_ids))
        .group_by(Checkpoint.job_id)
    )
    rows = session.execute(
        select(Checkpoint.job_id, Checkpoint.step, Checkpoint.uri).where(
            tuple_(Checkpoint.job_id, Checkpoint.step).in_(newest)
        )
    )
    return {job_id: (step, uri) for job_id, step, uri in rows}


def results(session: Session, job_id: str, benchmark: str | None) -> Sequence[EvalResult]:
    stmt = select(EvalResult).where(EvalResult.job_id == job_id)
    if benchmark is not None:
        stmt = stmt.where(EvalResult.benchmark == benchmark)
    order = (EvalResult.step.is_(None), EvalResult.step, EvalResult.benchmark)
    return session.scalars(stmt.order_by(*order)).all()
