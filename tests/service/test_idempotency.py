"""Idempotency-Key: retries return the original job; concurrent duplicates make one job."""

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis
from sqlalchemy import func, select

from store.models import Job
from tests.conftest import bearer
from tests.service.helpers import broker_messages, train_body


def test_same_key_same_body_replays_original_job_with_200(client, tokens):
    headers = {**bearer(tokens["submit"]), "Idempotency-Key": "nightly-2026-11-24"}
    first = client.post("/jobs", json=train_body(), headers=headers)
    again = client.post("/jobs", json=train_body(), headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["idempotency_key"] == "nightly-2026-11-24"


def test_replay_ignores_key_order_and_spelled_out_defaults(client, tokens):
    headers = {**bearer(tokens["submit"]), "Idempotency-Key": "k1"}
    first = client.post("/jobs", json=train_body(), headers=headers).json()
    body = dict(reversed(list(train_body(priority=0, metadata={}).items())))
    again = client.post("/jobs", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first["id"]


def test_same_key_different_body_is_422(client, tokens, session):
    headers = {**bearer(tokens["submit"]), "Idempotency-Key": "k2"}
    first = client.post("/jobs", json=train_body(), headers=headers).json()
    r = client.post("/jobs", json=train_body(total_steps=4), headers=headers)
    assert r.status_code == 422
    (error,) = r.json()["detail"]  # the shape of a validation error
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert error["type"] == "idempotency_key_reused"
    assert "k2" in error["msg"] and first["id"] in error["msg"]
    assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_twenty_concurrent_identical_posts_create_exactly_one_job(live_server, tokens, session):
    headers = {**bearer(tokens["submit"]), "Idempotency-Key": "burst"}

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{live_server}/jobs", json=train_body(), headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201], codes
    assert len({r.json()["id"] for r in responses}) == 1
    assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_replays_of_a_queued_job_send_no_message_while_its_message_waits(client, tokens, redis_url):
    """A replay re-sends only a message that is missing (its first submitter may have
    crashed before publishing); ten replays used to add ten messages (issue 24, 9)."""
    queue_type = f"replay{secrets.token_hex(3)}"  # a queue no worker serves
    body = train_body(resources={"gpus": 1, "gpu_type": queue_type})
    headers = {**bearer(tokens["submit"]), "Idempotency-Key": "replayed-often"}
    job_id = client.post("/jobs", json=body, headers=headers).json()["id"]
    for _ in range(10):
        assert client.post("/jobs", json=body, headers=headers).status_code == 200
    sent = [args for _, args, _ in broker_messages(redis_url, f"gpu.{queue_type}")]
    assert sent == [[job_id]]

    lists = redis.Redis.from_url(redis_url)
    lists.delete(*lists.keys(f"gpu.{queue_type}*"))  # the broker lost it: a replay re-sends
    assert client.post("/jobs", json=body, headers=headers).status_code == 200
    assert [a for _, a, _ in broker_messages(redis_url, f"gpu.{queue_type}")] == [[job_id]]
