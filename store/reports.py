"""What a running attempt reports, written into Postgres under its lease, each record once.

Every write is idempotent on a natural key, so replaying a record the database already
holds (see `workers.relay`) changes nothing: metrics upsert per (job, step), checkpoints
per (job, step), eval results per (job, benchmark, step), and events carry the key of the
report that produced them (`data.report`, "<attempt>:<seq>") and are added only once. A
resumed attempt re-running steps after its checkpoint overwrites their metrics.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.db import get_sessionmaker
from store.leases import Lease, fenced
from store.lifecycle import append_event
from store.models import Checkpoint, EvalResult, Job, JobEvent, Metric, utcnow
from trainer.results import BenchmarkResult

MetricRows = Mapping[int, Mapping[str, float | None]]
"""Buffered metrics: the values of each step."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where the run stands after the metrics it comes with."""

    step: int
    fraction: float
    eta_seconds: float | None


def _upsert(
    session: Session,
    model: type,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE on Postgres and SQLite alike."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(model).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={col: stmt.excluded[col] for col in update}
    )
    session.execute(stmt)


def _append_event_once(
    session: Session,
    job: Job,
    kind: str,
    message: str,
    data: dict[str, Any] | None = None,
    key: str | None = None,
) -> None:
    """`append_event`, skipped when an event with the same report `key` exists already."""
    if key is not None:
        seen = session.scalar(
            select(JobEvent.id)
            .where(JobEvent.job_id == job.id, JobEvent.data["report"].as_string() == key)
            .limit(1)
        )
        if seen is not None:
            return
        data = {**(data or {}), "report": key}
    append_event(session, job, kind, message, data)


def start_training(lease: Lease, start_step: int, total_steps: int, key: str | None) -> None:
    """The attempt trains steps `start_step + 1 .. total_steps`."""
    with fenced(lease) as (session, job):
        job.current_step = start_step
        job.progress = start_step / total_steps
        msg = f"attempt {lease.attempt}: steps {start_step + 1}..{total_steps}"
        data = {"start_step": start_step, "total_steps": total_steps}
        _append_event_once(session, job, "train_started", msg, data, key)


def write_metrics(lease: Lease, metrics: MetricRows, progress: Progress | None) -> None:
    with fenced(lease) as (session, job):
        _write_metrics(session, job, metrics, progress)


def _write_metrics(
    session: Session, job: Job, metrics: MetricRows, progress: Progress | None
) -> None:
    """Upsert the steps' metrics and move the job's progress (None: total steps unknown)."""
    now = utcnow()
    rows = [
        {"job_id": job.id, "step": step, "values": dict(values), "ts": now}
        for step, values in sorted(metrics.items())
    ]
    _upsert(session, Metric, rows, ["job_id", "step"], ["values", "ts"])
    if progress is not None:
        job.current_step = progress.step
        job.progress = progress.fraction
        if progress.eta_seconds is not None:
            job.eta_seconds = progress.eta_seconds
    job.updated_at = now


def record_checkpoint(
    lease: Lease,
    *,
    step: int,
    uri: str,
    sha256: str,
    size_bytes: int,
    key: str | None,
    metrics: MetricRows,
    progress: Progress | None,
) -> None:
    """The checkpoint's row and event, with the metrics still buffered (none: none are):
    every step a checkpoint covers is durable before anyone can resume from it."""
    with fenced(lease) as (session, job):
        if metrics:
            _write_metrics(session, job, metrics, progress)
        row = {
            "job_id": job.id,
            "step": step,
            "uri": uri,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "attempt": lease.attempt,
            "created_at": utcnow(),
        }
        _upsert(session, Checkpoint, [row], ["job_id", "step"], ["uri", "sha256", "size_bytes"])
        _forget_pruned(session, job.id)
        _append_event_once(
            session,
            job,
            "checkpoint",
            f"checkpoint at step {step}: {uri}",
            {"step": step, "sha256": sha256, "size_bytes": size_bytes},
            key,
        )


def record_eval(
    lease: Lease,
    step: int | None,
    results: Sequence[BenchmarkResult],
    message: str,
    key: str | None = None,
) -> None:
    """Upsert the eval results (one row per benchmark and step) and an `eval` event."""
    with fenced(lease) as (session, job):
        rows = [
            {
                "job_id": job.id,
                "benchmark": r.benchmark,
                "step": step,
                "k": r.k,
                "scores": dict(r.scores),
                "per_problem": {"problems": [dataclasses.asdict(p) for p in r.per_problem]},
                "created_at": utcnow(),
            }
            for r in results
        ]
        _upsert(
            session,
            EvalResult,
            rows,
            ["job_id", "benchmark", "step"],
            ["k", "scores", "per_problem"],
        )
        summary = {r.benchmark: r.scores for r in results}
        _append_event_once(session, job, "eval", message, summary, key)


def record_event(lease: Lease, kind: str, message: str, key: str | None) -> None:
    with fenced(lease) as (session, job):
        _append_event_once(session, job, kind, message, None, key)


def _forget_pruned(session: Session, job_id: str) -> None:
    """Drop rows of local checkpoints the trainer pruned (`keep_last`), so listings and
    `latest` never point at a deleted directory. Remote URIs are left as recorded."""
    rows = session.execute(
        select(Checkpoint.id, Checkpoint.uri).where(Checkpoint.job_id == job_id)
    ).all()
    gone = [row.id for row in rows if "://" not in row.uri and not Path(row.uri).exists()]
    if gone:
        session.execute(delete(Checkpoint).where(Checkpoint.id.in_(gone)))


def find_checkpoint(job_id: str, step: int | None) -> tuple[int, str] | None:
    """(step, URI) of a job's checkpoint at `step`, or of its newest when `step` is None."""
    query = select(Checkpoint.step, Checkpoint.uri).where(Checkpoint.job_id == job_id)
    if step is None:
        query = query.order_by(Checkpoint.step.desc()).limit(1)
    else:
        query = query.where(Checkpoint.step == step)
    with get_sessionmaker()() as session:
        row = session.execute(query).first()
    return None if row is None else (row.step, row.uri)
