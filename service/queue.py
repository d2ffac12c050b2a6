"""Hand a committed job to the broker: one "dgpo.run_job" message naming its id.

The database stays the truth. A publish that fails is logged and recorded as an event;
the job stays `queued` with `enqueued_at` cleared, and the workers' reconciler re-sends
it (it also re-sends queued jobs whose message was lost after a successful publish).
"""

import logging
import threading
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import kombu.pools
import redis
from celery import Celery
from kombu.utils.json import dumps

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


class _RedisPublisher:
    """Publish Celery's own `dgpo.run_job` messages with LPUSHes through kombu's pool.

    `send_task` costs ~0.4 ms of CPU per job, mostly a fresh redis client (and its
    response-callback table) per publish plus producer plumbing. Here Celery still builds
    the message (`as_task_v2`: the worker sees exactly what `send_task` sends), kombu's
    Redis channel frames it, and one reused client pushes it to the same priority list.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.connection = app.connection_for_write()
        self.channel = self.connection.default_channel
        self.client = redis.Redis(connection_pool=self.channel.pool)
        # kombu's pool raises past `max_connections` instead of waiting; the API's thread
        # pool publishes from more threads than that, so callers queue for a slot here.
        self.slots = threading.BoundedSemaphore(self.channel.pool.max_connections)
        self.wait_s = get_settings().broker_publish_timeout_s

    def frame(self, job_id: str, queue: str, priority: int) -> tuple[str, str]:
        """The Redis list and the serialised message for one job (broker priority)."""
        task_id = str(uuid.uuid4())
        headers, properties, body, _ = self.app.amqp.as_task_v2(
            task_id, RUN_JOB_TASK, args=[job_id], reply_to=self.app.thread_oid, ignore_result=None
        )
        channel = self.channel
        properties["delivery_mode"] = 2  # persistent, as kombu's Producer sets it
        message = channel.prepare_message(
            dumps(body), priority, "application/json", "utf-8", headers, properties
        )
        message["body"], encoding = channel.encode_body(message["body"], channel.body_encoding)
        message["properties"].update(
            body_encoding=encoding,
            delivery_tag=str(uuid.uuid4()),
            delivery_info={"exchange": "", "routing_key": queue},
        )
        key = f"{queue}{channel.sep}{priority}" if priority else queue  # kombu's priority list
        return key, dumps(message)

    def publish(self, frames: Sequence[tuple[str, str]]) -> None:
        """LPUSH every frame in one round trip (a pipeline, not a transaction)."""
        if not self.slots.acquire(timeout=self.wait_s):
            raise TimeoutError(f"no free broker connection within {self.wait_s} s")
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, payload in frames:
                pipe.lpush(key, payload)
            pipe.execute()
        finally:
            self.slots.release()

    def close(self) -> None:
        self.connection.release()


@lru_cache
def _redis_publisher() -> _RedisPublisher:
    return _RedisPublisher(_producer_app())


class RunMessage(NamedTuple):
    """What a worker needs to find a job: its id, its queue, and its (job) priority."""

    job_id: str
    queue: str
    priority: int


def enqueue(messages: Sequence[RunMessage]) -> None:
    """Publish the run messages (one Redis round trip); raises on broker failure.

    Callers record a failure and never fail the request: the job is already committed.
    """
    if not messages:
        return
    if is_redis(get_settings().broker_url):
        publisher = _redis_publisher()
        publisher.publish(
            [publisher.frame(m.job_id, m.queue, broker_priority(m.priority)) for m in messages]
        )
        return
    for m in messages:
        _producer_app().send_task(
            RUN_JOB_TASK,
            args=[m.job_id],
            queue=m.queue,
            priority=broker_priority(m.priority),
            retry=False,
        )


def reset() -> None:
    """Drop the cached producer (after DGPO_BROKER_URL changes)."""
    if _redis_publisher.cache_info().currsize:
        _redis_publisher().close()
    _redis_publisher.cache_clear()
    # kombu keeps connection pools in a process-wide registry keyed by broker URL: closing
    # only our app's pool would hand the next app that same closed pool.
    kombu.pools.reset()
    _producer_app.cache_clear()
