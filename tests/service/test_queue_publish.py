"""The fast Redis publish sends exactly the message Celery's `send_task` would."""

import base64
import json
import secrets

import redis

from service import queue
from service.jobs import ENVELOPE_FIELDS
from tests.service.helpers import train_body
from trainer.spec.jobs import JOB_REQUEST_ADAPTER

PER_MESSAGE_IDS = {"id", "root_id", "correlation_id", "delivery_tag"}


def _without_ids(message: dict) -> dict:
    """The message minus the fields that are fresh uuids on every publish."""
    out = {k: v for k, v in message.items() if k not in ("headers", "properties", "body")}
    for part in ("headers", "properties"):
        out[part] = {k: v for k, v in message[part].items() if k not in PER_MESSAGE_IDS}
    out["body"] = json.loads(base64.b64decode(message["body"]))
    return out


def test_enqueue_publishes_the_same_message_as_celery_send_task(redis_url):
    broker = redis.Redis.from_url(redis_url)
    name = f"gpu.publish-{secrets.token_hex(4)}"  # a list no other test writes to
    queue.reset()
    queue._producer_app().send_task(
        queue.RUN_JOB_TASK,
        args=["job-1"],
        queue=name,
        priority=queue.broker_priority(7),
        retry=False,
    )
    queue.enqueue([queue.RunMessage("job-1", name, 7)])
    key = f"{name}\x06\x16{queue.broker_priority(7)}"
    assert broker.llen(key) == 2, broker.keys("*")
    ours, celerys = (json.loads(m) for m in broker.lrange(key, 0, 1))
    broker.delete(key)
    assert ours["headers"]["id"] != celerys["headers"]["id"]
    assert ours["headers"]["id"] == ours["properties"]["correlation_id"]
    assert _without_ids(ours) == _without_ids(celerys)
    assert _without_ids(ours)["body"][0] == ["job-1"]


def test_top_priority_job_goes_to_the_plain_queue_list(redis_url):
    broker = redis.Redis.from_url(redis_url)
    queue.reset()
    name = f"cpu.publish-{secrets.token_hex(4)}"
    # Broker priority 0: kombu's list without a suffix.
    queue.enqueue([queue.RunMessage("job-9", name, 9)])
    message = json.loads(broker.lpop(name))
    assert message["headers"]["task"] == "dgpo.run_job"
    assert message["properties"]["priority"] == 0


def test_stored_spec_equals_the_revalidated_spec():
    request = JOB_REQUEST_ADAPTER.validate_python(train_body(priority=3, metadata={"a": "b"}))
    dumped = request.model_dump(mode="json")
    stored = {k: v for k, v in dumped.items() if k not in ENVELOPE_FIELDS}
    assert stored == request.spec().model_dump(mode="json")
