"""Repairs what crashes and lost messages leave behind; run periodically by `dgpo beat`.

1. A running job whose lease expired lost its worker: re-queue it (and publish a new
   message) while attempts remain, else fail it with an error that says why. A job in
   `cancelling` whose worker died is simply cancelled.
2. A queued job whose message is not in the broker lost it (never published after a
   crash between commit and publish, broker flushed or restarted without persistence):
   publish again, in batches. On Redis the queues are read once to see which messages
   are really missing, so a job waiting for capacity is never re-sent; on brokers that
   cannot be inspected, a job never dispatched (`enqueued_at` None) or dispatched longer
   ago than `requeue_lost_after_s` is. A duplicate is harmless: the claim lets only one
   message run the job.
3. A worker whose heartbeat stopped is marked dead.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, select, update

from store import broker, dispatch
from store.broker import RunMessage
from store.db import get_sessionmaker
from store.lifecycle import transition
from store.models import (
    ACTIVE_STATUSES,
    Job,
    JobStatus,
    Worker,
    WorkerStatus,
    utcnow,
)
from workers.settings import WorkerSettings, get_worker_settings

log = logging.getLogger(__name__)

REPUBLISH_BATCH = 1000
"""Messages per broker round trip and per stamping transaction."""


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    dead_workers: list[str] = field(default_factory=list)


def reconcile(settings: WorkerSettings | None = None) -> ReconcileReport:
    settings = settings or get_worker_settings()
    report = ReconcileReport()
    _recover_expired_leases(report)
    _republish_lost_messages(settings, report)
    _mark_dead_workers(settings, report)
    if any(vars(report).values()):
        log.info("reconcile: %s", report)
    return report


def _recover_expired_leases(report: ReconcileReport) -> None:
    now = utcnow()
    with get_sessionmaker()() as session:
        expired = session.scalars(
            select(Job.id).where(Job.status.in_(ACTIVE_STATUSES), Job.lease_expires_at < now)
        ).all()
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
            if job.status == JobStatus.CANCELLING:
                transition(
                    session, job, JobStatus.CANCELLED, f"worker {owner} died while cancelling"
                )
                report.cancelled.append(job_id)
            elif job.attempt >= job.max_attempts:
                error = (
                    f"worker {owner} stopped heartbeating during attempt {job.attempt} of "
                    f"{job.max_attempts}; giving up. Check that worker's logs (out of memory, "
                    "preemption?) and resubmit, or raise max_attempts."
                )
                transition(
                    session, job, JobStatus.FAILED, "lease expired, no attempts left", error=error
                )
                report.failed.append(job_id)
            else:
                transition(
                    session,
                    job,
                    JobStatus.QUEUED,
                    f"lease of worker {owner} expired during attempt {job.attempt}; re-queued",
                    data={"owner": owner},
                )
                report.requeued.append(job_id)
    for job_id in report.requeued:
        republish(job_id)


def _republish_lost_messages(settings: WorkerSettings, report: ReconcileReport) -> None:
    # The database first: a message published before this read is in the broker below.
    with get_sessionmaker()() as session:
        waiting = session.execute(
            select(Job.id, Job.queue, Job.priority, Job.enqueued_at).where(
                Job.status == JobStatus.QUEUED, Job.id.not_in(report.requeued)
            )
        ).all()
    if not waiting:
        return
    present = broker.waiting_job_ids({row.queue for row in waiting})
    if present is not None:
        lost = [row for row in waiting if row.id not in present]
    else:
        cutoff = utcnow() - timedelta(seconds=settings.requeue_lost_after_s)
        lost = [row for row in waiting if row.enqueued_at is None or row.enqueued_at <= cutoff]
    for start in range(0, len(lost), REPUBLISH_BATCH):
        sent = _republish_rows(lost[start : start + REPUBLISH_BATCH])
        report.republished.extend(sent)
        if not sent:  # the broker refuses; the next pass retries
            return


def republish(job_id: str) -> bool:
    """Send the run message and stamp `enqueued_at`; False if the broker refused."""
    with get_sessionmaker()() as session:
        row = session.execute(
            select(Job.id, Job.queue, Job.priority).where(
                Job.id == job_id, Job.status == JobStatus.QUEUED
            )
        ).one_or_none()
    return row is not None and bool(_republish_rows([row]))


def _republish_rows(rows: Sequence[Row[Any]]) -> list[str]:
    """Publish one message per job in one round trip, then stamp `enqueued_at` and log an
    `enqueued` event for those still queued (`store.dispatch.send`); the ids stamped."""
    messages = [RunMessage(row.id, row.queue, row.priority) for row in rows]
    with get_sessionmaker()() as session:
        return dispatch.send(session, messages, resent_by="the reconciler")


def _mark_dead_workers(settings: WorkerSettings, report: ReconcileReport) -> None:
    cutoff = utcnow() - timedelta(seconds=settings.worker_dead_after_s)
    with get_sessionmaker()() as session, session.begin():
        dead = session.scalars(
            update(Worker)
            .where(Worker.status == WorkerStatus.ALIVE, Worker.heartbeat_at < cutoff)
            .values(status=WorkerStatus.DEAD, running_job_ids=[])
            .returning(Worker.id)
            .execution_options(synchronize_session=False)
        ).all()
    report.dead_workers.extend(dead)
