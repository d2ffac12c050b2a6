"""Job submission, listing and cancel: the database side of the jobs routes."""

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, and_, func, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from config.settings import get_settings
from service.schemas import JobOut
from store import broker, job_rows
from store.errors import BadRequest, IdempotencyMismatch, NotFound
from store.lifecycle import append_event, transition
from store.models import Job, JobStatus, new_id, utcnow
from store.serialize import dumps
from trainer.spec import EvalJobRequest, TrainJobRequest

log = logging.getLogger(__name__)

JobRequestModel = TrainJobRequest | EvalJobRequest


ENVELOPE_FIELDS = frozenset({"kind", "priority", "metadata"})


def request_hash(request: JobRequestModel) -> str:
    """Hash of the validated request, so key order and spelled-out defaults do not matter."""
    return _hash_dump(request.model_dump(mode="json"))


def _hash_dump(dumped: Mapping[str, object]) -> str:
    return hashlib.sha256(dumps(dumped, sort_keys=True).encode()).hexdigest()


def get_job(
    session: Session, job_id: str, *, owner: str | None = None, for_update: bool = False
) -> Job:
    """The job, if it exists and `owner` (None: anyone) owns it; another principal's job
    is as unknown as a missing one, so ids cannot be probed."""
    if len(job_id) > 36 or "\x00" in job_id:  # cannot be an id; Postgres rejects NUL
        raise NotFound(f"no job with id {job_id!r}")
    stmt = select(Job).where(Job.id == job_id)
    if owner is not None:
        stmt = stmt.where(Job.owner == owner)
    job = session.scalar(stmt.with_for_update() if for_update else stmt)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}")
    return job


OwnerKey = tuple[str, str | None]
"""(owner, Idempotency-Key): keys are unique per owner."""


@dataclass(frozen=True)
class NewJob:
    """The row a validated request inserts, built before any session is opened."""

    values: dict[str, Any]
    """Column name -> value (`metadata`, which the model calls `metadata_`)."""

    @property
    def id(self) -> str:
        return self.values["id"]

    @property
    def idempotency_key(self) -> str | None:
        return self.values["idempotency_key"]

    @property
    def owner_key(self) -> OwnerKey:
        return self.values["owner"], self.values["idempotency_key"]

    def as_out(self) -> JobOut:
        """The job as the API shows it once inserted (what a read would return, unread)."""
        return JobOut.model_validate(
            {**_NOTHING_YET, **self.values, "metadata_": self.values["metadata"]}
        )


_NOTHING_YET = dict.fromkeys(set(JobOut.model_fields) - {"warnings"})
"""Every field None: a new job has no lease, error, start or finish yet."""


def new_job(request: JobRequestModel, idempotency_key: str | None, owner: str) -> NewJob:
    """A queued job of `owner` for `request`: the spec without its envelope, resources, and
    hash. It is not dispatched yet (`enqueued_at` None) until `hand_off` publishes it."""
    # One dump serves the hash and the stored spec: the request already is a validated
    # spec plus the envelope, so `request.spec()` would only validate it a second time.
    dumped = request.model_dump(mode="json")
    resources = request.resources
    now = utcnow()
    return NewJob(
        {
            "id": new_id(),
            "kind": request.kind,
            "status": JobStatus.QUEUED,
            "spec": {k: v for k, v in dumped.items() if k not in ENVELOPE_FIELDS},
            "priority": request.priority,
            "queue": resources.queue,
            "metadata": dumped["metadata"],
            "owner": owner,
            "idempotency_key": idempotency_key,
            "request_hash": _hash_dump(dumped),
            "attempt": 0,
            "max_attempts": get_settings().default_max_attempts,
            "fencing_token": 0,
            "progress": 0.0,
            "created_at": now,
            "queued_at": now,
            "updated_at": now,
            "enqueued_at": None,
        }
    )


Submitted = tuple[JobOut, bool]
"""A job and whether it is the replay of an earlier submission with the same key."""


class Publishable(Protocol):
    """What `hand_off` needs of a job: a `Job` row or the `JobOut` of one."""

    id: str
    queue: str
    priority: int
    attempt: int
    enqueued_at: datetime | None
    updated_at: datetime


def insert_jobs(session: Session, batch: Sequence[NewJob]) -> list[Submitted | Exception]:
    """Insert `batch` and its `submitted` events in one transaction; one outcome per entry.

    A used Idempotency-Key skips its row (ON CONFLICT DO NOTHING) instead of aborting the
    transaction, so concurrent duplicates make exactly one job and everyone else gets a
    replay, or an IdempotencyMismatch when their body differs. Rows go in key order so
    that two transactions sharing keys take their locks in the same order (no deadlock).
    Keys are per owner: another principal's job is never found, let alone named.
    """
    ordered = sorted(batch, key=lambda new: (new.values["owner"], new.idempotency_key or ""))
    inserted = job_rows.insert_rows(session, [new.values for new in ordered])
    session.commit()
    skipped = [new for new in batch if new.id not in inserted]
    earlier = _jobs_by_key(session, {new.owner_key for new in skipped})
    return [(new.as_out(), False) if new.id in inserted else _replay(new, earlier) for new in batch]


def _jobs_by_key(session: Session, keys: set[OwnerKey]) -> dict[OwnerKey, Job]:
    keys = {key for key in keys if key[1] is not None}
    if not keys:
        return {}
    rows = session.scalars(select(Job).where(tuple_(Job.owner, Job.idempotency_key).in_(keys)))
    return {(job.owner, job.idempotency_key): job for job in rows}


def _replay(new: NewJob, earlier: Mapping[OwnerKey, Job]) -> Submitted | Exception:
    key = new.idempotency_key
    job = earlier.get(new.owner_key) if key is not None else None
    if job is None:  # only a key conflict skips a row; anything else is a bug
        return RuntimeError(f"job {new.id} was neither inserted nor found by its key")
    if job.request_hash != new.values["request_hash"]:
        return IdempotencyMismatch(
            f"Idempotency-Key {key!r} was already used for job {job.id} with a different "
            "body; send the original body to get that job, or use a new key for a new job"
        )
    return JobOut.model_validate(job), True


def submit(
    session: Session, request: JobRequestModel, idempotency_key: str | None, owner: str
) -> tuple[Job, bool]:
    """Insert one queued job of `owner` (or find the one this key created); commits.

    The job returned belongs to `session`, so callers can go on changing it.
    """
    (outcome,) = insert_jobs(session, [new_job(request, idempotency_key, owner)])
    if isinstance(outcome, Exception):
        raise outcome
    job, replayed = outcome
    return session.get_one(Job, job.id), replayed


def to_dispatch(outcomes: Sequence[Submitted | Exception]) -> list[JobOut]:
    """The jobs to publish after a commit: every new one, and each replayed one still
    queued that was never dispatched (its first submitter crashed before publishing)."""
    chosen: dict[str, JobOut] = {}
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            continue
        job, replayed = outcome
        if not replayed or (job.status == JobStatus.QUEUED and job.enqueued_at is None):
            chosen.setdefault(job.id, job)
    return list(chosen.values())


def hand_off(session: Session, new_jobs: Sequence[Publishable]) -> None:
    """Publish committed jobs and record it (`enqueued_at`); a broker failure is recorded
    as an event, never raised, and leaves them for a replay or the reconciler to send.
    """
    if not new_jobs:
        return
    try:
        broker.enqueue([broker.RunMessage(job.id, job.queue, job.priority) for job in new_jobs])
    except Exception as exc:  # any transport error: the jobs are safe in the database
        log.warning("enqueue of %d job(s) failed: %s", len(new_jobs), exc)
        for job in new_jobs:
            append_event(
                session,
                job,
                "enqueue_failed",
                f"broker publish failed ({type(exc).__name__}: {exc}); the job stays queued "
                "and the reconciler re-enqueues it",
            )
        session.commit()
        return
    now = utcnow()
    # `updated_at` is set here, not left to the column's `onupdate`, so that the jobs given
    # (the 201 body of `POST /jobs`) carry the very value the row now holds.
    jobs = Job.__table__  # a Core statement: the ORM's bulk-update path costs more CPU
    session.execute(  # than the round trip on this hot path
        jobs.update()
        .where(jobs.c.id.in_([job.id for job in new_jobs]), jobs.c.status == JobStatus.QUEUED)
        .values(enqueued_at=now, updated_at=now)
    )
    session.commit()
    for job in new_jobs:
        job.enqueued_at = job.updated_at = now


def cancel(session: Session, job_id: str, owner: str | None = None) -> Job:
    """Queued → cancelled at once, running → cancelling; repeated cancels are no-ops."""
    job = get_job(session, job_id, owner=owner, for_update=True)
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
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous page",
            ("query", "cursor"),
        ) from exc
    if created.tzinfo is None:
        raise BadRequest(
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous page",
            ("query", "cursor"),
        )
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
    owner: str | None = None,
    statuses: Sequence[str] = (),
    kinds: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Job], str | None]:
    """Newest first; `next_cursor` resumes after the last row (stable under inserts).

    The cursor is one row-value comparison, so an index on (owner/kind, created_at, id)
    seeks straight to the page instead of scanning every newer row.
    """
    stmt = select(Job)
    if owner is not None:
        stmt = stmt.where(Job.owner == owner)
    if statuses:
        stmt = stmt.where(Job.status.in_(statuses))
    if kinds:
        stmt = stmt.where(Job.kind.in_(kinds))
    stmt = _metadata_filter(session, stmt, metadata or {})
    if cursor is not None:
        created, job_id = _decode_cursor(cursor)
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < tuple_(created, job_id))
    rows = list(
        session.scalars(stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def count_by_status(session: Session) -> dict[str, int]:  # fleet-wide, for /metrics
    return dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())  # type: ignore[arg-type]


__all__ = [
    "NewJob",
    "Submitted",
    "cancel",
    "count_by_status",
    "get_job",
    "hand_off",
    "insert_jobs",
    "list_jobs",
    "new_job",
    "submit",
    "to_dispatch",
]
