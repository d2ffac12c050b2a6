"""What the reconciler reads and repairs in Postgres after crashes and lost messages:
jobs whose lease expired with their worker, and queued jobs that may lack a message."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, or_, select, text
from sqlalchemy.orm import Session

from store import fleet
from store.db import get_sessionmaker
from store.lifecycle import JobError, transition
from store.models import ACTIVE_STATUSES, Job, JobStatus, utcnow


@dataclass
class Recovered:
    """The jobs whose worker died, by how each one ended."""

    requeued: list[str] = field(default_factory=list)
    """Attempts remain: queued again (their messages still to be sent)."""
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def database_started_at(session: Session) -> datetime | None:
    """When the database server last started; None for SQLite (embedded), which has no
    server to go away."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(text("SELECT pg_postmaster_start_time()"))


def recover_expired_leases(lease_s: float) -> Recovered:
    """A running job whose lease expired lost its worker: re-queue it while attempts
    remain, else fail it with an error that says why; a job in `cancelling` is cancelled.

    A lease last renewed (`lease_s` before its expiry) before the database server started
    lapsed because the database was down, not the worker: its job is re-queued without
    counting the attempt, as the slot itself does after a database fault
    (`store.attempts.requeue_uncounted`), which it could not write while the database was
    away. One transaction per job, its row locked (`SKIP LOCKED`: another reconciler has it).
    """
    now = utcnow()
    recovered = Recovered()
    with get_sessionmaker()() as session:
        expired = session.scalars(
            select(Job.id).where(Job.status.in_(ACTIVE_STATUSES), Job.lease_expires_at < now)
        ).all()
        db_started = database_started_at(session) if expired else None
    for job_id in expired:
        with get_sessionmaker()() as session, session.begin():
            job = session.scalar(
                select(Job)
                .where(
                    Job.id == job_id,
                    Job.status.in_(ACTIVE_STATUSES),
                    Job.lease_expires_at < now,
                )
                .with_for_update(skip_locked=True)
            )
            if job is None:  # renewed or finished meanwhile, or another reconciler has it
                continue
            owner = job.lease_owner
            renewed = job.lease_expires_at - timedelta(seconds=lease_s)
            if job.status == JobStatus.CANCELLING:
                transition(
                    session, job, JobStatus.CANCELLED, f"worker {owner} died while cancelling"
                )
                recovered.cancelled.append(job_id)
            elif db_started is not None and renewed < db_started:
                message = (
                    f"lease of worker {owner} lapsed during attempt {job.attempt} while the "
                    f"database was down (it restarted at {db_started.isoformat()}); "
                    "re-queued without counting it"
                )
                data = {"owner": owner, "fault": "database_restart"}
                transition(session, job, JobStatus.QUEUED, message, data=data)
                job.attempt -= 1
                recovered.requeued.append(job_id)
            elif job.attempt >= job.max_attempts:
                error = (
                    f"worker {owner} stopped heartbeating during attempt {job.attempt} of "
                    f"{job.max_attempts}; giving up. Check that worker's logs (out of memory, "
                    "preemption?) and resubmit, or raise max_attempts."
                )
                lost = JobError("node_lost", error, job.attempt)
                transition(
                    session, job, JobStatus.FAILED, "lease expired, no attempts left", error=lost
                )
                recovered.failed.append(job_id)
            else:
                transition(
                    session,
                    job,
                    JobStatus.QUEUED,
                    f"lease of worker {owner} expired during attempt {job.attempt}; re-queued",
                    error=JobError(
                        "node_lost", f"worker {owner} stopped heartbeating", job.attempt
                    ),
                    data={"owner": owner},
                )
                recovered.requeued.append(job_id)
    return recovered


def queued_jobs(excluding: Collection[str]) -> Sequence[Row[Any]]:
    """(id, queue, priority, enqueued_at) of every queued job that is due (its retry
    back-off over, `not_before`) but those `excluding` names."""
    with get_sessionmaker()() as session:
        return session.execute(
            select(Job.id, Job.queue, Job.priority, Job.enqueued_at).where(
                Job.status == JobStatus.QUEUED,
                Job.id.not_in(excluding),
                or_(Job.not_before.is_(None), Job.not_before <= utcnow()),
            )
        ).all()


def served_queues() -> set[str]:
    """Every queue some live worker consumes, in a session of its own."""
    with get_sessionmaker()() as session:
        return fleet.served_queues(session)
