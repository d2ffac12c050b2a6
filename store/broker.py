"""Hand a committed job to the broker: one "dgpo.run_job" message naming its id.

The database stays the truth. A publish that fails is logged and recorded as an event;
the job stays `queued` with `enqueued_at` cleared, and the workers' reconciler re-sends
it (it also re-sends queued jobs whose message was lost after a successful publish).
"""

import base64
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

import kombu.pools
import orjson
import redis
from celery import Celery
from kombu.utils.json import dumps

from config.settings import get_settings

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
    response-callback table) per publish plus producer plumbing. Here Celery and kombu
    build one template message (`as_task_v2`, `prepare_message`: the worker sees what
    `send_task` sends), each job gets a copy with its own ids, and one reused client
    pushes a whole batch to the priority lists in one round trip.

    Why this is safe to keep: the envelope and the list naming (`queue` + `sep` +
    priority) are kombu's private Redis wire format, not an API. pyproject.toml pins
    kombu's minor version, and tests/service/test_queue_publish.py compares what this
    sends with Celery's own `send_task`, so a kombu that changes the format fails there
    before a worker ever sees a message it cannot read.
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

    def frame(self, job_id: str, queue: str, priority: int) -> tuple[str, bytes]:
        """The Redis list and the serialised message for one job (broker priority).

        Only the ids, the queue and the priority differ between two run messages, so the
        template that Celery and kombu built once is copied with those replaced: a tenth
        of the CPU of building each message from scratch.
        """
        template, embed = self._template
        task_id = str(uuid.uuid4())
        message = {
            **template,
            "body": base64.b64encode(orjson.dumps([[job_id], {}, embed])).decode(),
            "headers": {
                **template["headers"],
                "id": task_id,
                "root_id": task_id,
                "argsrepr": repr([job_id]),
            },
            "properties": {
                **template["properties"],
                "correlation_id": task_id,
                "priority": priority,
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": "", "routing_key": queue},
            },
        }
        key = f"{queue}{self.channel.sep}{priority}" if priority else queue  # kombu's list
        return key, orjson.dumps(message)

    @cached_property
    def _template(self) -> tuple[dict[str, Any], Any]:
        """A run message as `send_task` would build it, and its body's embed part."""
        headers, properties, body, _ = self.app.amqp.as_task_v2(
            str(uuid.uuid4()),
            RUN_JOB_TASK,
            args=["template"],
            reply_to=self.app.thread_oid,
            ignore_result=None,
        )
        channel = self.channel
        properties["delivery_mode"] = 2  # persistent, as kombu's Producer sets it
        message = channel.prepare_message(
            dumps(body), 0, "application/json", "utf-8", headers, properties
        )
        message["body"], encoding = channel.encode_body(message["body"], channel.body_encoding)
        if encoding != "base64":
            raise RuntimeError(f"kombu's Redis channel encodes bodies as {encoding}, not base64")
        message["properties"]["body_encoding"] = encoding
        _args, _kwargs, embed = body
        return message, embed

    def publish(self, frames: Sequence[tuple[str, bytes]]) -> None:
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


def waiting_job_ids(queues: Iterable[str]) -> set[str] | None:
    """Ids of the jobs whose run message sits in the broker: waiting in one of `queues`
    (any priority) or delivered to a worker and not yet acked. None when the broker
    cannot be inspected (the embedded transports); then only time tells a lost message.

    One pipelined read of every list and of kombu's `unacked` hash; the job id is the
    first task argument in each message body.
    """
    if not is_redis(get_settings().broker_url):
        return None
    publisher = _redis_publisher()
    sep = publisher.channel.sep
    pipe = publisher.client.pipeline(transaction=True)
    for name in queues:
        for step in PRIORITY_STEPS:
            pipe.lrange(f"{name}{sep}{step}" if step else name, 0, -1)
    pipe.hvals(publisher.channel.unacked_key)
    *lists, unacked = pipe.execute()
    messages = [orjson.loads(raw) for found in lists for raw in found]
    messages += [orjson.loads(raw)[0] for raw in unacked]
    return {_job_id(message) for message in messages} - {None}  # type: ignore[operator]


def _job_id(message: dict[str, Any]) -> str | None:
    """The job a `dgpo.run_job` message names (None for any other task's message)."""
    if message.get("headers", {}).get("task") != RUN_JOB_TASK:
        return None
    args = orjson.loads(base64.b64decode(message["body"]))[0]
    return str(args[0]) if args else None


def reset() -> None:
    """Drop the cached producer (after DGPO_BROKER_URL changes)."""
    if _redis_publisher.cache_info().currsize:
        _redis_publisher().close()
    _redis_publisher.cache_clear()
    # kombu keeps connection pools in a process-wide registry keyed by broker URL: closing
    # only our app's pool would hand the next app that same closed pool.
    kombu.pools.reset()
    _producer_app.cache_clear()
