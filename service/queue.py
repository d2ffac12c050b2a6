"""Hand a committed job to the broker: one "dgpo.run_job" message naming its id.

The database stays the truth. A publish that fails is logged and recorded as an event;
the job stays `queued` with `enqueued_at` cleared, and the workers' reconciler re-sends
it (it also re-sends queued jobs whose message was lost after a successful publish).
"""

import logging
from functools import lru_cache

from celery import Celery

from service.core.config import get_settings

log = logging.getLogger(__name__)

RUN_JOB_TASK = "dgpo.run_job"
PRIORITY_STEPS = list(range(10))


def is_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://"))


def redis_transport_options(broker_url: str, **redis_only: object) -> dict[str, object]:
    """Transport options for `broker_url`: priority sub-queues (plus `redis_only`) on Redis.

    Producer and workers both call this so they agree on the priority sub-queues. The
    server-less transports of the embedded mode (SQLAlchemy, filesystem) take none: the
    SQLAlchemy one hands its options to `create_engine`, which rejects unknown keys.
    """
    if not is_redis(broker_url):
        return {}
    return {"priority_steps": PRIORITY_STEPS, "queue_order_strategy": "priority", **redis_only}


def broker_priority(priority: int) -> int:
    """Job priority (9 runs first) to the broker's: Redis pops priority 0 first."""
    return 9 - priority


@lru_cache
def _producer_app() -> Celery:
    """One Celery app per process, so publishes reuse its connection and producer pool."""
    settings = get_settings()
    app = Celery("dgpo-service", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options=redis_transport_options(
            settings.broker_url,
            socket_connect_timeout=settings.broker_publish_timeout_s,
            socket_timeout=settings.broker_publish_timeout_s,
        ),
        broker_connection_retry=False,
        broker_connection_timeout=settings.broker_publish_timeout_s,
        task_serializer="json",
        task_create_missing_queues=True,
    )
    return app


def enqueue(job_id: str, queue: str, priority: int) -> None:
    """Publish the run message; raises on broker failure (callers record it, never fail)."""
    app = _producer_app()
    app.send_task(
        RUN_JOB_TASK,
        args=[job_id],
        queue=queue,
        priority=broker_priority(priority),
        retry=False,
    )


def reset() -> None:
    """Drop the cached producer (after DGPO_BROKER_URL changes)."""
    if _producer_app.cache_info().currsize:
        _producer_app().pool.force_close_all()
    _producer_app.cache_clear()
