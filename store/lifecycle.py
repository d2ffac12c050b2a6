"""The one place a job's status changes; every change is checked and appends an event.

The API (cancel) and the workers (finish, re-enqueue after a lost lease) call
`transition` on a row they hold locked (`SELECT ... FOR UPDATE`), so that two writers
cannot both move the same job; a worker takes a queued job with `claim`, whose
conditional UPDATE is its own lock.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from store import usage
from store.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobEvent, JobStatus, utcnow

S = JobStatus
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.CANCELLING, S.QUEUED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.FAILED, S.SUCCEEDED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
"""running → queued is the re-enqueue after a lost lease (crashed worker)."""


@dataclass(frozen=True)
class JobError:
    """Why an attempt failed: a code a client can branch on (`workers.failure_codes`),
    the one-line message, and the attempt it ended. The API's `error` object."""

    code: str
    message: str
    attempt: int

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "attempt": self.attempt}


class IllegalTransition(Exception):
    """A status change the lifecycle forbids; the API answers 409."""

    def __init__(self, job_id: str, src: str, dst: str) -> None:
        self.job_id, self.src, self.dst = job_id, src, dst
        allowed = ", ".join(sorted(ALLOWED[JobStatus(src)])) or "none (terminal)"
        src, dst = str(src), str(dst)  # the value, not the enum's repr
        super().__init__(
            f"job {job_id} cannot go from {src!r} to {dst!r}; allowed from {src!r}: {allowed}"
        )


def check_transition(job_id: str, src: str, dst: str) -> None:
    """Raise IllegalTransition unless `src → dst` is allowed."""
    if JobStatus(dst) not in ALLOWED[JobStatus(src)]:
        raise IllegalTransition(job_id, src, dst)


class JobRef(Protocol):
    """Whatever names a job and its attempt: a `Job` row, or the API's view of one."""

    id: str
    attempt: int


def append_event(
    session: Session,
    job: JobRef,
    kind: str,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Add an event for `job` at its current attempt (committed with the caller's transaction)."""
    event = JobEvent(
        job_id=job.id, kind=kind, message=message, attempt=job.attempt, data=data or {}
    )
    session.add(event)
    return event


def transition(
    session: Session,
    job: Job,
    dst: JobStatus,
    message: str = "",
    *,
    error: JobError | None = None,
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Move `job` to `dst`, stamp its timestamps, and append a `status` event.

    Leaving `running` for `queued` or a terminal status releases the lease; the fencing
    token stays, so a late write from the old lease holder is still refused. Leaving an
    active status ends the attempt: its time on the slot is recorded (`store.usage`).
    """
    src = job.status
    check_transition(job.id, src, dst)
    now = utcnow()
    if src in ACTIVE_STATUSES and dst not in ACTIVE_STATUSES:
        usage.record(session, job, str(dst), now)
    job.status = dst
    if dst == S.RUNNING and job.started_at is None:
        job.started_at = now
    if dst == S.QUEUED:
        job.queued_at = now
        job.enqueued_at = None
    if dst in TERMINAL_STATUSES:
        job.finished_at = now
        if dst == S.SUCCEEDED:
            job.progress = 1.0  # and an earlier attempt's error no longer holds:
            job.error = job.error_code = job.error_attempt = None
    if dst == S.QUEUED or dst in TERMINAL_STATUSES:
        job.lease_owner = None
        job.lease_expires_at = None
    if error is not None:
        job.error, job.error_code, job.error_attempt = error.message, error.code, error.attempt
    job.updated_at = now
    return _status_event(session, job, src, dst, message, error, data)


@dataclass(frozen=True)
class Claimed:
    """The attempt a claim started: its fencing token and number, and what to run."""

    token: int
    attempt: int
    kind: str
    spec: dict[str, Any]


def claim(session: Session, job_id: str, owner: str, lease_s: float) -> Claimed | None:
    """Move a queued job to running for `owner`, or return None (not queued any more).

    One conditional UPDATE ... RETURNING: of two workers racing on the same message,
    exactly one sees a row. It bumps the fencing token and the attempt and leases the job
    to `owner` for `lease_s`; the `status` event is written as `transition` writes it.
    """
    check_transition(job_id, S.QUEUED, S.RUNNING)
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == S.QUEUED)
        .values(
            status=S.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            fencing_token=Job.fencing_token + 1,
            attempt=Job.attempt + 1,
            started_at=func.coalesce(Job.started_at, now),
            attempt_started_at=now,
            preempt_requested_at=None,
            updated_at=now,
        )
        .returning(Job.id, Job.attempt, Job.fencing_token, Job.kind, Job.spec)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        return None
    message = f"queued → running (attempt {row.attempt}, worker {owner})"
    _status_event(session, row, S.QUEUED, S.RUNNING, message, None, {"owner": owner})
    return Claimed(row.fencing_token, row.attempt, row.kind, dict(row.spec))


def _status_event(
    session: Session,
    job: JobRef,
    src: str,
    dst: JobStatus,
    message: str,
    error: JobError | None,
    data: dict[str, Any] | None,
) -> JobEvent:
    """The `status` event of one change: from, to, the error and the caller's data."""
    payload = {"from": src, "to": str(dst), **(data or {})}
    if error is not None:
        payload["error"] = error.as_dict()
    return append_event(session, job, "status", message or f"{src} → {dst}", payload)
