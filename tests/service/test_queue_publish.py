"""The fast Redis publish sends exactly the message Celery's `send_task` would."""

import base64
import json
import secrets

import redis

from store import broker
from tests.service.helpers import train_body
from trainer.spec.jobs import JOB_REQUEST_ADAPTER, without_envelope

PER_MESSAGE_IDS = {"id", "root_id", "correlation_id", "delivery_tag"}


def _without_ids(message: dict) -> dict:
    """The message minus the fields that are fresh uuids on every publish."""
    out = {k: v for k, v in message.items() if k not in ("headers", "properties", "body")}
    for part in ("headers", "properties"):
        out[part] = {k: v for k, v in message[part].items() if k not in PER_MESSAGE_IDS}
    out["body"] = json.loads(base64.b64decode(message["body"]))
    return out


def test_enqueue_publishes_the_same_message_as_celery_send_task(redis_url):
    client = redis.Redis.from_url(redis_url)
    name = f"gpu.publish-{secrets.token_hex(4)}"  # a list no other test writes to
    broker.reset()
    broker._producer_app().send_task(
        broker.RUN_JOB_TASK,
        args=["job-1"],
        queue=name,
        priority=broker.broker_priority(7),
        retry=False,
    )
    broker.enqueue([broker.RunMessage("job-1", name, 7)])
    key = f"{name}\x06\x16{broker.broker_priority(7)}"
    assert client.llen(key) == 2, client.keys("*")
    ours, celerys = (json.loads(m) for m in client.lrange(key, 0, 1))
    client.delete(key)
    assert ours["headers"]["id"] != celerys["headers"]["id"]
    assert ours["headers"]["id"] == ours["properties"]["correlation_id"]
    assert _without_ids(ours) == _without_ids(celerys)
    assert _without_ids(ours)["body"][0] == ["job-1"]


def test_top_priority_job_goes_to_the_plain_queue_list(redis_url):
    client = redis.Redis.from_url(redis_url)
    broker.reset()
    name = f"cpu.publish-{secrets.token_hex(4)}"
    # Broker priority 0: kombu's list without a suffix.
    broker.enqueue([broker.RunMessage("job-9", name, 9)])
    message = json.loads(client.lpop(name))
    assert message["headers"]["task"] == "dgpo.run_job"
    assert message["properties"]["priority"] == 0


def test_stored_spec_equals_the_revalidated_spec():
    request = JOB_REQUEST_ADAPTER.validate_python(train_body(priority=3, metadata={"a": "b"}))
    dumped = request.model_dump(mode="json")
    stored = without_envelope(dumped)
    assert stored == request.spec().model_dump(mode="json")
