"""Repairs what crashes and lost messages leave behind; run periodically by `dgpo beat`.

1. A running job whose lease expired lost its worker: re-queue it (and publish a new
   message) while attempts remain, else fail it with an error that says why. A job in
   `cancelling` whose worker died is simply cancelled. A lease that lapsed because the
   database server was down (restarted after the lease's last renewal) is not the job's
   fault: re-queued without counting the attempt.
2. A queued job whose message is not in the broker lost it (never published after a
   crash between commit and publish, broker flushed or restarted without persistence):
   publish again, in batches. On Redis the queues are read once to see which messages
   are really missing, so a job waiting for capacity is never re-sent; on brokers that
   cannot be inspected, a job never dispatched (`enqueued_at` None) or dispatched longer
   ago than `requeue_lost_after_s` is, once a live worker serves its queue: until then
   nobody would take the message, and an `enqueued` event every pass would read like a
   fault (the job's page and `GET /queue` say that nobody serves it). A duplicate is
   harmless: the claim lets only one message run the job.
3. A worker whose heartbeat stopped is marked dead.
4. A waiting job that the claim order puts before a running one, and that no free slot
   fits, preempts it (`store.preemption`; off with `DGPO_PREEMPTION='{"enabled": false}'`).
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from config.worker_settings import WorkerSettings, get_worker_settings
from store import broker, dispatch, preemption, recovery
from store import workers as worker_rows
from store.db import get_sessionmaker
from store.models import utcnow

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
    preempting: list[str] = field(default_factory=list)


def reconcile(settings: WorkerSettings | None = None) -> ReconcileReport:
    settings = settings or get_worker_settings()
    report = ReconcileReport()
    _recover_expired_leases(settings, report)
    _republish_lost_messages(settings, report)
    _mark_dead_workers(settings, report)
    _preempt(report)
    if any(vars(report).values()):
        log.info("reconcile: %s", report)
    return report


def _recover_expired_leases(settings: WorkerSettings, report: ReconcileReport) -> None:
    recovered = recovery.recover_expired_leases(settings.lease_s)
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
        served = recovery.served_queues()
        lost = [
            row
            for row in waiting
            if row.queue in served and (row.enqueued_at is None or row.enqueued_at <= cutoff)
        ]
    for start in range(0, len(lost), REPUBLISH_BATCH):
        batch = [row.id for row in lost[start : start + REPUBLISH_BATCH]]
        sent = dispatch.resend(batch, resent_by="the reconciler")
        report.republished.extend(sent)
        if not sent:  # the broker refuses; the next pass retries
            return


def republish(job_id: str) -> bool:
    """Send the run message of a queued job again; False if it is not queued or the broker
    refused."""
    return bool(dispatch.resend([job_id], resent_by="the reconciler"))


def _preempt(report: ReconcileReport) -> None:
    with get_sessionmaker()() as session, session.begin():
        report.preempting.extend(d.victim for d in preemption.preempt(session))


def _mark_dead_workers(settings: WorkerSettings, report: ReconcileReport) -> None:
    cutoff = utcnow() - timedelta(seconds=settings.worker_dead_after_s)
    report.dead_workers.extend(worker_rows.mark_dead(silent_since=cutoff))
