"""Claims, heartbeats and fenced writes: the database decides who runs a job.

Redis redelivers unacknowledged messages after its visibility timeout, so one job can be
delivered twice. A worker therefore runs a job only after one atomic UPDATE moved it from
`queued` to `running` and bumped its fencing token; every later write of that attempt
locks the row *and* matches the token, so a worker whose lease was taken over can never
overwrite the newer attempt.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.db import get_sessionmaker, retrying
from store.lifecycle import append_event, check_transition
from store.models import ACTIVE_STATUSES, Job, JobStatus, utcnow

log = logging.getLogger(__name__)


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


def claim(job_id: str, owner: str, lease_s: float) -> Lease | None:
    """Take a queued job for `owner`, or return None (already leased, finished, cancelled).

    One conditional UPDATE ... RETURNING: of two workers racing on the same message,
    exactly one sees a row. A lost database connection is retried (`retrying`); if the
    database stays away the error propagates and the message must not be acked.
    """
    check_transition(job_id, JobStatus.QUEUED, JobStatus.RUNNING)
    return retrying(lambda: _claim(job_id, owner, lease_s), f"job {job_id}: claim")


def _claim(job_id: str, owner: str, lease_s: float) -> Lease | None:
    now = utcnow()
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            fencing_token=Job.fencing_token + 1,
            attempt=Job.attempt + 1,
            updated_at=now,
        )
        .returning(Job.fencing_token, Job.attempt, Job.kind, Job.spec, Job.started_at)
        .execution_options(synchronize_session=False)
    )
    with get_sessionmaker()() as session, session.begin():
        row = session.execute(stmt).one_or_none()
        if row is None:
            return None
        job = session.get_one(Job, job_id)
        if row.started_at is None:
            job.started_at = now
        append_event(
            session,
            job,
            "status",
            f"queued → running (attempt {row.attempt}, worker {owner})",
            {"from": JobStatus.QUEUED, "to": JobStatus.RUNNING, "owner": owner},
        )
    return Lease(job_id, row.fencing_token, row.attempt, owner, row.kind, dict(row.spec))


@contextmanager
def fenced(lease: Lease) -> Iterator[tuple[Session, Job]]:
    """A transaction holding the job row locked, entered only while `lease` is current.

    Raises LeaseLost when the token moved on or the job left running/cancelling.
    """
    with get_sessionmaker()() as session, session.begin():
        job = session.scalar(
            select(Job)
            .where(
                Job.id == lease.job_id,
                Job.fencing_token == lease.token,
                Job.status.in_(ACTIVE_STATUSES),
            )
            .with_for_update()
        )
        if job is None:
            raise LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} lost its lease")
        yield session, job


def renew(lease: Lease, lease_s: float) -> str:
    """Extend the lease; returns the job status. Raises LeaseLost if it was taken over."""
    with get_sessionmaker()() as session, session.begin():
        status = session.scalar(
            update(Job)
            .where(
                Job.id == lease.job_id,
                Job.fencing_token == lease.token,
                Job.status.in_(ACTIVE_STATUSES),
            )
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
            .returning(Job.status)
            .execution_options(synchronize_session=False)
        )
    if status is None:
        raise LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} lost its lease")
    return status


class LeaseKeeper:
    """Background thread renewing a lease while the trainer runs in the foreground.

    `lost` is set when a renewal finds the lease taken over; the reporting callback
    checks it at the next hook and aborts the run.
    """

    def __init__(self, lease: Lease, lease_s: float, every_s: float) -> None:
        self.lease, self.lease_s, self.every_s = lease, lease_s, every_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                renew(self.lease, self.lease_s)
            except LeaseLost:
                log.warning("job %s: lease lost, stopping attempt", self.lease.job_id)
                self.lost.set()
                return
            except Exception:  # a database blip must not kill the keeper; retry next tick
                log.exception("job %s: lease renewal failed", self.lease.job_id)
