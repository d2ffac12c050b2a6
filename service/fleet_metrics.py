"""Prometheus metrics for the fleet, read from the database when Prometheus scrapes.

Complements `service.observability` (jobs by status, queue depth, API latency) with what
an operator alerts on: how long each GPU type's queue has waited, how long jobs take,
and whether workers still heartbeat. Read from Postgres, so every API replica reports
the same truth and nothing goes stale when a worker dies.
"""

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from store import fleet, preemption, usage
from store.db import get_sessionmaker
from store.models import utcnow

DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 72 * 3600)


class FleetCollector(Collector):
    """Queue wait and demand per GPU type and per job shape, job durations, worker
    heartbeat ages."""

    def collect(self) -> Iterator[Metric]:
        with get_sessionmaker()() as session:
            yield from self._queue(session)
            yield self._durations(session)
            yield self._heartbeats(session)
            yield from self._usage(session)
            yield from self._preemptions(session)

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
        yield from self._shapes(summary)

    def _shapes(self, summary: fleet.FleetLoad) -> Iterator[Metric]:
        labels = ["queue", "gpu_type", "gpus", "nodes"]
        queued = GaugeMetricFamily(
            "dgpo_queue_shape_jobs", "Queued jobs per shape (GPUs per job)", labels=labels
        )
        wait = GaugeMetricFamily(
            "dgpo_queue_shape_oldest_wait_seconds",
            "Age of the oldest queued job of each shape",
            labels=labels,
        )
        unfit = GaugeMetricFamily(
            "dgpo_queue_shape_unplaceable",
            "1 when no live slot serving the queue has this many GPUs (per node, on enough "
            "workers)",
            labels=labels,
        )
        for shape in summary.shapes:
            key = [shape.queue, shape.gpu_type, str(shape.gpus), str(shape.nodes)]
            queued.add_metric(key, shape.queued)
            wait.add_metric(key, shape.oldest_wait_seconds or 0.0)
            unfit.add_metric(key, 0 if shape.fits_live_slot else 1)
        largest = GaugeMetricFamily(
            "dgpo_queue_largest_request_gpus", "The most GPUs one queued job asks for"
        )
        largest.add_metric([], summary.largest_queued_gpus)
        yield from (queued, wait, unfit, largest)

    def _usage(self, session: Session) -> Iterator[Metric]:
        labels = ["principal", "queue", "gpu_type"]
        gpu = CounterMetricFamily(
            "dgpo_usage_gpu_seconds", "GPU-seconds of ended attempts", labels=labels
        )
        wall = CounterMetricFamily(
            "dgpo_usage_wall_seconds", "Wall seconds of ended attempts", labels=labels
        )
        for row in usage.totals(session):
            key = [row.owner, row.queue, row.gpu_type]
            gpu.add_metric(key, row.gpu_seconds)
            wall.add_metric(key, row.wall_seconds)
        yield from (gpu, wall)

    def _preemptions(self, session: Session) -> Iterator[Metric]:
        asked = CounterMetricFamily(
            "dgpo_preemptions_requested",
            "Running jobs asked to give their slot up, by ground (quota, fair_share, "
            "priority, drain)",
            labels=["queue", "gpu_type", "ground"],
        )
        for row in preemption.asked_totals(session):
            asked.add_metric([row.queue, row.gpu_type, row.ground], row.count)
        latency = SummaryMetricFamily(
            "dgpo_preemption_latency_seconds",
            "Preemptions that ended with the job queued again: request to slot free",
            labels=["queue", "gpu_type"],
        )
        for row in preemption.ended_totals(session):
            latency.add_metric(
                [row.queue, row.gpu_type], count_value=row.count, sum_value=row.latency_seconds
            )
        yield from (asked, latency)

    def _durations(self, session: Session) -> Metric:
        family = HistogramMetricFamily(
            "dgpo_job_duration_seconds",
            "Wall time from first start to finish of terminal jobs",
            labels=["kind", "status"],
        )
        for row in fleet.job_durations(session, DURATION_BUCKETS):
            buckets = [(str(bound), n) for bound, n in row.at_most]
            family.add_metric(
                [row.kind, row.status], [*buckets, ("+Inf", row.count)], sum_value=row.total_seconds
            )
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
