"""Prometheus metrics: API latency (ASGI middleware) and job counts read at scrape time."""

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store import fleet
from store.db import get_sessionmaker
from store.models import JobStatus

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class JobCollector(Collector):
    """Jobs by status and queue depth, counted when Prometheus scrapes (no stale gauges)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily("dgpo_jobs", "Jobs by status", labels=["status"])
        depth = GaugeMetricFamily("dgpo_queue_depth", "Queued jobs per queue", labels=["queue"])
        with get_sessionmaker()() as session:
            counts = fleet.jobs_by_status(session)
            queued = fleet.queued_per_queue(session)
        for status in JobStatus:
            by_status.add_metric([status.value], counts.get(status.value, 0))
        for queue, count in queued.items():
            depth.add_metric([queue], count)
        yield by_status
        yield depth


class Telemetry:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "dgpo_http_request_duration_seconds",
            "API latency by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.submit_batch_size = Histogram(
            "dgpo_submit_batch_size",
            "Submissions committed together by one POST /jobs group commit",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(JobCollector())


class LatencyMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead); labels by route template, not raw path."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app, self.telemetry = app, telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.telemetry.latency.labels(scope["method"], template, str(status["code"])).observe(
                time.perf_counter() - start
            )
