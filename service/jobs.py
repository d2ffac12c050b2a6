"""Job submission, listing and cancel: the database side of the jobs routes."""

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Executable,
    Select,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import queue
from service.core.config import get_settings
from service.errors import BadRequest, IdempotencyMismatch, NotFound
from service.lifecycle import append_event, transition
from service.models import Job, JobEvent, JobStatus, new_id, utcnow
from trainer.spec import EvalJobRequest, TrainJobRequest

log = logging.getLogger(__name__)

JobRequestModel = TrainJobRequest | EvalJobRequest


ENVELOPE_FIELDS = frozenset({"kind", "priority", "metadata"})


def request_hash(request: JobRequestModel) -> str:
    """Hash of the validated request, so key order and spelled-out defaults do not matter."""
    return _hash_dump(request.model_dump(mode="json"))


def _hash_dump(dumped: Mapping[str, object]) -> str:
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_job(session: Session, job_id: str, *, for_update: bool = False) -> Job:
    if len(job_id) > 36 or "\x00" in job_id:  # cannot be an id; Postgres rejects NUL
        raise NotFound(f"no job with id {job_id!r}")
    stmt = select(Job).where(Job.id == job_id)
    job = session.scalar(stmt.with_for_update() if for_update else stmt)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}")
    return job


def _replay(session: Session, key: str, digest: str) -> Job | None:
    job = session.scalar(select(Job).where(Job.idempotency_key == key))
    if job is not None and job.request_hash != digest:
        raise IdempotencyMismatch(
            f"Idempotency-Key {key!r} was already used for job {job.id} with a different "
            "body; send the original body to get that job, or use a new key for a new job"
        )
    return job


def submit(
    session: Session, request: JobRequestModel, idempotency_key: str | None
) -> tuple[Job, bool]:
    """Insert a queued job (or find the one this key created); returns (job, replayed).

    Concurrent duplicates race on the unique key: the loser rolls back and re-reads.
    """
    # One dump serves the hash and the stored spec: the request already is a validated
    # spec plus the envelope, so `request.spec()` would only validate it a second time.
    dumped = request.model_dump(mode="json")
    digest = _hash_dump(dumped)
    if idempotency_key is not None and (job := _replay(session, idempotency_key, digest)):
        return job, True
    resources = request.resources
    now = utcnow()
    values = {
        "id": new_id(),
        "kind": request.kind,
        "status": JobStatus.QUEUED,
        "spec": {k: v for k, v in dumped.items() if k not in ENVELOPE_FIELDS},
        "priority": request.priority,
        "resources": dumped["resources"],
        "queue": resources.queue,
        "gpus": resources.gpus,
        "gpu_type": resources.gpu_type,
        "metadata": dumped["metadata"],
        "idempotency_key": idempotency_key,
        "request_hash": digest,
        "attempt": 0,
        "max_attempts": get_settings().default_max_attempts,
        "fencing_token": 0,
        "progress": 0.0,
        "total_steps": getattr(request, "total_steps", None),
        "created_at": now,
        "queued_at": now,
        "updated_at": now,
        "enqueued_at": now,
    }
    try:
        job = _insert_submitted(session, values, f"{request.kind} job queued on {values['queue']}")
        session.commit()
    except IntegrityError:
        session.rollback()
        if idempotency_key is None:
            raise
        if replayed := _replay(session, idempotency_key, digest):
            return replayed, True
        raise
    return job, False


def autocommit_where_atomic(session: Session) -> None:
    """Run a fresh submit-only session in autocommit where `submit` writes one statement.

    On Postgres the job and its event are one statement, so a transaction around it would
    only add BEGIN and COMMIT round trips. SQLite writes two and keeps its transaction.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _insert_submitted(session: Session, values: dict[str, Any], message: str) -> Job:
    """Insert the job row and its `submitted` event.

    On Postgres both go in one statement (a data-modifying CTE): one round trip, and in
    an autocommit session no BEGIN/COMMIT round trips either. SQLite has no such CTE.
    """
    if session.get_bind().dialect.name != "postgresql":
        job = session.scalars(insert(Job).returning(Job), [_orm_values(values)]).one()
        append_event(session, job, "submitted", message)
        return job
    stmt = _submit_statement(tuple(values))
    return session.scalars(stmt, {**values, "event_message": message}).one()


@cache
def _submit_statement(columns: tuple[str, ...]) -> Executable:
    """The job + event CTE with bound parameters, built once: constructing it (30 column
    proxies) and its cache key cost more CPU per request than the database does."""
    jobs_t, events_t = Job.__table__, JobEvent.__table__
    params = {name: bindparam(name, type_=jobs_t.c[name].type) for name in columns}
    new_job = insert(jobs_t).values(params).returning(*jobs_t.c).cte("new_job")
    new_event = (
        insert(events_t)
        .from_select(
            ["job_id", "ts", "kind", "message", "attempt", "data"],
            select(
                new_job.c.id,
                new_job.c.created_at,
                literal("submitted"),
                bindparam("event_message", type_=events_t.c.message.type),
                new_job.c.attempt,
                literal({}, events_t.c.data.type),
            ),
        )
        .cte("new_event")
    )
    return select(Job).from_statement(select(new_job).add_cte(new_event))


def _orm_values(values: dict[str, Any]) -> dict[str, Any]:
    """Column names to ORM attribute names (`metadata` is `metadata_` on the model)."""
    return {("metadata_" if k == "metadata" else k): v for k, v in values.items()}


def hand_off(session: Session, job: Job) -> None:
    """Publish the committed job; a broker failure is recorded, never raised.

    `enqueued_at` was set optimistically at insert. On failure it is cleared and an
    event says why, so the reconciler (and anyone reading the job) knows to re-send.
    """
    try:
        queue.enqueue(job.id, job.queue, job.priority)
    except Exception as exc:  # any transport error: the job is safe in the database
        log.warning("enqueue of job %s failed: %s", job.id, exc)
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == JobStatus.QUEUED)
            .values(enqueued_at=None)
        )
        append_event(
            session,
            job,
            "enqueue_failed",
            f"broker publish failed ({type(exc).__name__}: {exc}); the job stays queued "
            "and the reconciler re-enqueues it",
        )
        session.commit()
        job.enqueued_at = None


def cancel(session: Session, job_id: str) -> Job:
    """Queued → cancelled at once, running → cancelling; repeated cancels are no-ops."""
    job = get_job(session, job_id, for_update=True)
    if job.status in (JobStatus.CANCELLED, JobStatus.CANCELLING):
        session.rollback()
        return job
    target = JobStatus.CANCELLED if job.status == JobStatus.QUEUED else JobStatus.CANCELLING
    transition(session, job, target, "cancel requested through the API")
    session.commit()
    return job


def _encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        created = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise BadRequest(
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous page"
        ) from exc
    if created.tzinfo is None:
        raise BadRequest(f"invalid cursor {cursor!r}: pass the next_cursor of a previous page")
    return created, job_id


def _metadata_filter(session: Session, stmt: Select[tuple[Job]], wanted: Mapping[str, str]):  # type: ignore[no-untyped-def]
    """JSONB containment on Postgres (GIN-indexed); per-key JSON extraction elsewhere."""
    if not wanted:
        return stmt
    if session.get_bind().dialect.name == "postgresql":
        return stmt.where(type_coerce(Job.metadata_, JSONB).contains(dict(wanted)))
    return stmt.where(and_(*(Job.metadata_[k].as_string() == v for k, v in wanted.items())))


def list_jobs(
    session: Session,
    *,
    statuses: Sequence[str] = (),
    kinds: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Job], str | None]:
    """Newest first; `next_cursor` resumes after the last row (stable under inserts)."""
    stmt = select(Job)
    if statuses:
        stmt = stmt.where(Job.status.in_(statuses))
    if kinds:
        stmt = stmt.where(Job.kind.in_(kinds))
    stmt = _metadata_filter(session, stmt, metadata or {})
    if cursor is not None:
        created, job_id = _decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                Job.created_at < created,
                and_(Job.created_at == created, Job.id < job_id),
            )
        )
    rows = list(
        session.scalars(stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def count_by_status(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())  # type: ignore[arg-type]


__all__ = [
    "autocommit_where_atomic",
    "cancel",
    "count_by_status",
    "get_job",
    "hand_off",
    "list_jobs",
    "submit",
]
