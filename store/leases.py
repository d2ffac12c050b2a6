"""Claims, heartbeats and fenced writes: the database decides who runs a job.

Redis redelivers unacknowledged messages after its visibility timeout, so one job can be
delivered twice. A worker therefore runs a job only after one atomic UPDATE moved it from
`queued` to `running` and bumped its fencing token (`store.lifecycle.claim`); every later
write of that attempt locks the row *and* matches the token (`fenced`), so a worker whose
lease was taken over can never overwrite the newer attempt.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from store import lifecycle, placement
from store.db import get_sessionmaker, retrying
from store.models import ACTIVE_STATUSES, Job, JobStatus, utcnow

StopReason = Literal["cancel", "preempt"]


class LeaseLost(Exception):
    """This attempt no longer owns the job (expired and re-claimed); stop without writing."""


@dataclass(frozen=True)
class Lease:
    job_id: str
    token: int
    attempt: int
    owner: str
    kind: str
    spec: dict[str, Any]
    member: int | None = None
    """Its place in a multi-node job's gang (`store.gangs`); None: a one-node job."""


def claim(job_id: str, owner: str, lease_s: float) -> Lease | None:
    """Take a queued job for `owner`, or return None (already leased, finished, cancelled).

    A lost database connection is retried (`retrying`); if the database stays away the
    error propagates and the message must not be acked.
    """

    def attempt() -> Lease | None:
        with get_sessionmaker()() as session, session.begin():
            claimed = lifecycle.claim(session, job_id, owner, lease_s)
        if claimed is None:
            return None
        return Lease(job_id, claimed.token, claimed.attempt, owner, claimed.kind, claimed.spec)

    return retrying(attempt, f"job {job_id}: claim")


def place(
    job_id: str, slot: placement.Slot, lease_s: float
) -> tuple[Lease | None, placement.Placed]:
    """Claim the job `slot` should run next, prompted by `job_id`'s run message
    (`store.placement`): its lease (None: nothing to run here) and what happened."""

    def attempt() -> tuple[Lease | None, placement.Placed]:
        with get_sessionmaker()() as session, session.begin():
            placed = placement.place(session, job_id, slot, lease_s)
        got = placed.claimed
        if got is None or placed.job_id is None:
            return None, placed
        lease = Lease(
            placed.job_id, got.token, got.attempt, slot.worker, got.kind, got.spec, placed.member
        )
        return lease, placed

    return retrying(attempt, f"job {job_id}: place")


def _current(lease: Lease) -> tuple[ColumnElement[bool], ...]:
    """The condition of every fenced statement: the job, at this lease's token, active."""
    return (
        Job.id == lease.job_id,
        Job.fencing_token == lease.token,
        Job.status.in_(ACTIVE_STATUSES),
    )


def _lost(lease: Lease) -> LeaseLost:
    return LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} lost its lease")


@contextmanager
def fenced(lease: Lease) -> Iterator[tuple[Session, Job]]:
    """A transaction holding the job row locked, entered only while `lease` is current.

    Raises LeaseLost when the token moved on or the job left running/cancelling.
    """
    with get_sessionmaker()() as session, session.begin():
        job = session.scalar(select(Job).where(*_current(lease)).with_for_update())
        if job is None:
            raise _lost(lease)
        yield session, job


def renew(lease: Lease, lease_s: float) -> str:
    """Extend the lease; returns the job status. Raises LeaseLost if it was taken over."""
    with get_sessionmaker()() as session, session.begin():
        status = session.scalar(
            update(Job)
            .where(*_current(lease))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
            .returning(Job.status)
            .execution_options(synchronize_session=False)
        )
    if status is None:
        raise _lost(lease)
    return status


def stop_asked(lease: Lease) -> StopReason | None:
    """Whether the attempt was asked to stop (a cancel wins over a preemption) while
    `lease` is current; else LeaseLost."""
    with fenced(lease) as (_, job):
        if job.status == JobStatus.CANCELLING:
            return "cancel"
        return "preempt" if job.preempt_requested_at is not None else None
