"""Repairs what crashes and lost messages leave behind; run periodically by `dgpo beat`.

1. A running job whose lease expired lost its worker: re-queue it (and publish a new
   message) while attempts remain, else fail it with an error that says why. A job in
   `cancelling` whose worker died is simply cancelled.
2. A queued job whose message is older than the threshold may have lost it (broker
   flushed or restarted without persistence): publish again. A duplicate is harmless,
   the claim lets only one message run the job.
3. A worker whose heartbeat stopped is marked dead.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select, update

from service import queue
from service.core.db import get_sessionmaker
from service.lifecycle import append_event, transition
from service.models import ACTIVE_STATUSES, Job, JobStatus, Worker, WorkerStatus, utcnow
from workers.settings import WorkerSettings, get_worker_settings

log = logging.getLogger(__name__)


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
    cutoff = utcnow() - timedelta(seconds=settings.requeue_lost_after_s)
    with get_sessionmaker()() as session:
        stale = session.scalars(
            select(Job.id).where(
                Job.status == JobStatus.QUEUED,
                or_(Job.enqueued_at.is_(None), Job.enqueued_at <= cutoff),
                Job.id.not_in(report.requeued),
            )
        ).all()
    for job_id in stale:
        if republish(job_id):
            report.republished.append(job_id)


def republish(job_id: str) -> bool:
    """Send the run message and stamp `enqueued_at`; False if the broker refused."""
    with get_sessionmaker()() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.QUEUED:
            return False
        target, priority = job.queue, job.priority
    try:
        queue.enqueue([queue.RunMessage(job_id, target, priority)])
    except Exception as exc:  # the next reconcile retries; the job stays queued
        log.warning("re-enqueue of job %s failed: %s", job_id, exc)
        return False
    with get_sessionmaker()() as session, session.begin():
        job = session.get_one(Job, job_id)
        job.enqueued_at = utcnow()
        append_event(session, job, "enqueued", f"re-sent to queue {target} by the reconciler")
    return True


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
