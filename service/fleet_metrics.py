"""Prometheus metrics for the fleet, read from the database when Prometheus scrapes.

Complements `service.observability` (jobs by status, queue depth, API latency) with what
an operator alerts on: how long each GPU type's queue has waited, how long jobs take,
and whether workers still heartbeat. Read from Postgres, so every API replica reports
the same truth and nothing goes stale when a worker dies.
"""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from store import fleet
from store.db import get_sessionmaker
from store.models import TERMINAL_STATUSES, Job, utcnow

DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 72 * 3600)


def _duration_seconds(session: Session) -> ColumnElement[float]:
    """finished_at - started_at in seconds, in the database's own date arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    return func.extract("epoch", Job.finished_at - Job.started_at)


class FleetCollector(Collector):
    """Queue wait and demand per GPU type, job durations, worker heartbeat ages."""

    def collect(self) -> Iterator[Metric]:
        with get_sessionmaker()() as session:
            yield from self._queue(session)
            yield self._durations(session)
            yield self._heartbeats(session)

    def _queue(self, session: Session) -> Iterator[Metric]:
        labels = ["queue", "gpu_type"]
        wait = GaugeMetricFamily(
            "dgpo_queue_oldest_wait_seconds", "Age of the oldest queued job", labels=labels
        )
        gpus = GaugeMetricFamily(
            "dgpo_queue_requested_gpus", "GPUs requested by queued jobs", labels=labels
        )
        busy = GaugeMetricFamily("dgpo_running_gpus", "GPUs held by running jobs", labels=labels)
        summary = fleet.queue_summary(session)
        for row in summary.queues:
            key = [row.queue, row.gpu_type]
            wait.add_metric(key, row.oldest_wait_seconds or 0.0)
            gpus.add_metric(key, row.queued_gpus)
            busy.add_metric(key, row.running_gpus)
        slots = GaugeMetricFamily("dgpo_worker_slots", "Job slots of live workers")
        slots.add_metric([], summary.slots_alive)
        yield from (wait, gpus, busy, slots)

    def _durations(self, session: Session) -> Metric:
        seconds = _duration_seconds(session)
        columns = [func.count(), func.coalesce(func.sum(seconds), 0.0)]
        columns += [func.sum(case((seconds <= b, 1), else_=0)) for b in DURATION_BUCKETS]
        rows = session.execute(
            select(Job.kind, Job.status, *columns)
            .where(Job.status.in_(TERMINAL_STATUSES), Job.started_at.is_not(None))
            .group_by(Job.kind, Job.status)
        ).all()
        family = HistogramMetricFamily(
            "dgpo_job_duration_seconds",
            "Wall time from first start to finish of terminal jobs",
            labels=["kind", "status"],
        )
        for kind, status, count, total, *cumulative in rows:
            buckets = [
                (str(b), int(n or 0)) for b, n in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            family.add_metric([kind, status], [*buckets, ("+Inf", count)], sum_value=float(total))
        return family

    def _heartbeats(self, session: Session) -> Metric:
        family = GaugeMetricFamily(
            "dgpo_worker_heartbeat_age_seconds",
            "Seconds since each registered worker last heartbeat",
            labels=["worker", "gpu_type", "status"],
        )
        now = utcnow()
        for worker in fleet.list_workers(session, None):
            age = (now - worker.heartbeat_at).total_seconds()
            family.add_metric([worker.id, worker.gpu_type, worker.status], max(0.0, age))
        return family
