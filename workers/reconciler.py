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

from sqlalchemy import Row, insert, select, update

from store import broker, recovery
from store import workers as worker_rows
from store.db import get_sessionmaker
from store.models import Job, JobEvent, JobStatus, utcnow
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
    recovered = recovery.recover_expired_leases()
    report.requeued.extend(recovered.requeued)
    report.failed.extend(recovered.failed)
    report.cancelled.extend(recovered.cancelled)
    for job_id in report.requeued:
        republish(job_id)


def _republish_lost_messages(settings: WorkerSettings, report: ReconcileReport) -> None:
    # The database first: a message published before this read is in the broker below.
    waiting = recovery.queued_jobs(excluding=report.requeued)
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
    `enqueued` event for those still queued, in one transaction; the ids stamped."""
    try:
        broker.enqueue([broker.RunMessage(row.id, row.queue, row.priority) for row in rows])
    except Exception as exc:  # the next reconcile retries; the jobs stay queued
        log.warning("re-enqueue of %d job(s) failed: %s", len(rows), exc)
        return []
    now = utcnow()
    where = {row.id: row.queue for row in rows}
    with get_sessionmaker()() as session, session.begin():
        stamped = session.execute(
            update(Job)
            .where(Job.id.in_(where), Job.status == JobStatus.QUEUED)
            .values(enqueued_at=now)
            .returning(Job.id, Job.attempt)
            .execution_options(synchronize_session=False)
        ).all()
        if stamped:
            session.execute(
                insert(JobEvent),
                [
                    {
                        "job_id": job_id,
                        "ts": now,
                        "kind": "enqueued",
                        "message": f"re-sent to queue {where[job_id]} by the reconciler",
                        "attempt": attempt,
                        "data": {},
                    }
                    for job_id, attempt in stamped
                ],
            )
    return [job_id for job_id, _ in stamped]


def _mark_dead_workers(settings: WorkerSettings, report: ReconcileReport) -> None:
    cutoff = utcnow() - timedelta(seconds=settings.worker_dead_after_s)
    report.dead_workers.extend(worker_rows.mark_dead(silent_since=cutoff))
