"""Job submission, listing and cancel: the database side of the jobs routes."""

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from config.settings import get_settings
from store import broker, dispatch, job_rows
from store.broker import RunMessage
from store.errors import BadRequest, IdempotencyMismatch, NotFound
from store.lifecycle import transition
from store.models import Job, JobStatus, new_id, utcnow
from store.serialize import dumps
from trainer.spec import EvalJobRequest, TrainJobRequest
from trainer.spec.jobs import without_envelope

log = logging.getLogger(__name__)

JobRequestModel = TrainJobRequest | EvalJobRequest


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


JobRead = dict[str, Any]
"""A job as a read of its row returns it: attribute name -> value (`metadata_`)."""

_ATTRIBUTE = {prop.columns[0].name: prop.key for prop in Job.__mapper__.column_attrs}
"""Column name -> attribute name (they differ only where a name is taken: `metadata`)."""

_UNSET = dict.fromkeys(_ATTRIBUTE.values())
"""Every attribute None: what a new row has no value for yet (lease, error, start...)."""


@dataclass(frozen=True)
class NewJob:
    """The row a validated request inserts, built before any session is opened."""

    values: dict[str, Any]
    """Column name -> value; the insert's columns."""

    @property
    def id(self) -> str:
        return self.values["id"]

    @property
    def idempotency_key(self) -> str | None:
        return self.values["idempotency_key"]

    @property
    def owner_key(self) -> OwnerKey:
        return self.values["owner"], self.values["idempotency_key"]

    def as_read(self) -> JobRead:
        """The job as a read returns it once inserted, without reading it."""
        return {**_UNSET, **{_ATTRIBUTE[name]: value for name, value in self.values.items()}}


def _read(job: Job) -> JobRead:
    return {attribute: getattr(job, attribute) for attribute in _UNSET}


def new_job(request: JobRequestModel, idempotency_key: str | None, owner: str) -> NewJob:
    """A queued job of `owner` for `request`: the spec without its envelope, resources, and
    hash. It says it is dispatched (`enqueued_at`) from its insert on: see `store.dispatch`."""
    # One dump serves the hash and the stored spec: the request already is a validated
    # spec plus the envelope, so `request.spec()` would only validate it a second time.
    dumped = request.model_dump(mode="json")
    resources = request.resources
    default_attempts = get_settings().default_max_attempts
    now = utcnow()
    return NewJob(
        {
            "id": new_id(),
            "kind": request.kind,
            "status": JobStatus.QUEUED,
            "spec": without_envelope(dumped),
            "priority": request.priority,
            "queue": resources.queue,
            "metadata": dumped["metadata"],
            "owner": owner,
            "idempotency_key": idempotency_key,
            "request_hash": _hash_dump(dumped),
            "attempt": 0,
            "max_attempts": min(request.max_attempts or default_attempts, default_attempts),
            "fencing_token": 0,
            "progress": 0.0,
            "created_at": now,
            "queued_at": now,
            "updated_at": now,
            "enqueued_at": now,
        }
    )


Submitted = tuple[JobRead, bool]
"""A job and whether it is the replay of an earlier submission with the same key."""


def submit_jobs(session: Session, batch: Sequence[NewJob]) -> list[Submitted | Exception]:
    """Insert `batch` (`insert_jobs`) and send the run messages it calls for; one outcome
    per entry."""
    outcomes = insert_jobs(session, batch)
    _send_submitted(session, outcomes)
    return outcomes


def insert_jobs(session: Session, batch: Sequence[NewJob]) -> list[Submitted | Exception]:
    """Insert `batch` and its `submitted` events in one transaction; one outcome per entry.

    A used Idempotency-Key skips its row (ON CONFLICT DO NOTHING) instead of aborting the
    transaction, so concurrent duplicates make exactly one job and everyone else gets a
    replay, or an IdempotencyMismatch when their body differs. Rows go in key order so
    that two transactions sharing keys take their locks in the same order (no deadlock).
    Keys are per owner: another principal's job is never found, let alone named. A value
    the database refuses (say a NUL in a string) fails the whole statement, so the batch
    is retried one by one and only its own entry gets the error.
    """
    try:
        return _insert(session, batch)
    except (DataError, IntegrityError):
        session.rollback()
        if len(batch) == 1:
            raise
    return [_insert_alone(session, new) for new in batch]


def _insert_alone(session: Session, new: NewJob) -> Submitted | Exception:
    try:
        (outcome,) = _insert(session, [new])
    except (DataError, IntegrityError) as exc:
        session.rollback()
        return exc
    return outcome


def _insert(session: Session, batch: Sequence[NewJob]) -> list[Submitted | Exception]:
    ordered = sorted(batch, key=lambda new: (new.values["owner"], new.idempotency_key or ""))
    inserted = job_rows.insert_rows(session, [new.values for new in ordered])
    session.commit()
    skipped = [new for new in batch if new.id not in inserted]
    earlier = _jobs_by_key(session, {new.owner_key for new in skipped})
    return [
        (new.as_read(), False) if new.id in inserted else _replay(new, earlier) for new in batch
    ]


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
    return _read(job), True


def _send_submitted(session: Session, outcomes: Sequence[Submitted | Exception]) -> None:
    """Send the run message of every job inserted, and of every replayed one still queued
    whose message is not in the broker: its first submitter may have crashed before
    publishing, which nothing in the row tells.

    A replayed job whose publish failed earlier is stamped dispatched first. A publish the
    broker refuses clears `enqueued_at` in `outcomes` as in the rows.
    """
    chosen: dict[str, JobRead] = {}
    inserted: set[str] = set()
    for outcome in outcomes:
        if not isinstance(outcome, Exception) and outcome[0]["status"] == JobStatus.QUEUED:
            chosen.setdefault(outcome[0]["id"], outcome[0])
            if not outcome[1]:
                inserted.add(outcome[0]["id"])
    for job_id in _still_waiting(chosen, set(chosen) - inserted):
        del chosen[job_id]
    unmarked = [job for job in chosen.values() if job["enqueued_at"] is None]
    if unmarked:
        now = utcnow()
        stamped = {job_id for job_id, _ in dispatch.mark(session, [j["id"] for j in unmarked], now)}
        session.commit()
        for job in unmarked:
            if job["id"] in stamped:
                job["enqueued_at"] = job["updated_at"] = now
    messages = [RunMessage(job["id"], job["queue"], job["priority"]) for job in chosen.values()]
    if not dispatch.send(session, messages):
        for job in chosen.values():
            job["enqueued_at"] = None


def _still_waiting(jobs: Mapping[str, JobRead], replayed: set[str]) -> set[str]:
    """Those `replayed` jobs whose run message waits in the broker (or is delivered and not
    yet acked): a replay sends none of them again. A broker that cannot be inspected
    (embedded) or read gets every one again; a duplicate is harmless, only wasteful."""
    if not replayed:
        return set()
    try:
        present = broker.waiting_job_ids({jobs[job_id]["queue"] for job_id in replayed})
    except Exception as exc:  # any transport error: the send below meets it too
        log.warning("broker not readable for %d replayed job(s): %s", len(replayed), exc)
        return set()
    return replayed & present if present is not None else set()


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
    return session.get_one(Job, job["id"]), replayed


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


def metadata_filter(session: Session, stmt: Select[tuple[Job]], wanted: Mapping[str, str]):  # type: ignore[no-untyped-def]
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
    stmt = metadata_filter(session, stmt, metadata or {})
    if cursor is not None:
        created, job_id = _decode_cursor(cursor)
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < tuple_(created, job_id))
    rows = list(
        session.scalars(stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


__all__ = [
    "JobRead",
    "NewJob",
    "Submitted",
    "cancel",
    "get_job",
    "insert_jobs",
    "list_jobs",
    "new_job",
    "submit",
    "submit_jobs",
]
