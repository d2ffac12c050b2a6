"""The reconciler with 10,000 jobs waiting for capacity: it reads the broker once,
re-sends nothing that is still queued, and exactly the messages that went missing."""

import time

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.worker_settings import WorkerSettings
from store import broker, job_rows, jobs
from store.models import DEFAULT_PRINCIPAL, JobEvent, new_id, utcnow
from tests.service.helpers import train_body
from trainer.spec.jobs import JOB_REQUEST_ADAPTER
from workers.reconciler import reconcile

WAITING = 10_000
RESOURCES = {"gpus": 1, "gpu_type": "scale"}
QUEUE = "gpu.scale"
"""A queue no test worker serves: every message stays put."""


def _messages(client: redis.Redis) -> list[tuple[bytes, bytes]]:
    """(list key, raw message) for every message waiting on QUEUE."""
    return [(key, raw) for key in client.keys(f"{QUEUE}*") for raw in client.lrange(key, 0, -1)]


def _waiting_jobs(session: Session, count: int) -> list[str]:
    """`count` queued jobs whose run messages are in the broker, as `POST /jobs` leaves them."""
    request = JOB_REQUEST_ADAPTER.validate_python(train_body(resources=RESOURCES))
    template = jobs.new_job(request, None, DEFAULT_PRINCIPAL)
    rows = [{**template.values, "id": new_id(), "enqueued_at": utcnow()} for _ in range(count)]
    for start in range(0, count, 1000):
        chunk = rows[start : start + 1000]
        job_rows.insert_rows(session, chunk)
        session.commit()
        broker.enqueue([broker.RunMessage(row["id"], row["queue"], 0) for row in chunk])
    return [row["id"] for row in rows]


def test_a_pass_over_10k_waiting_jobs_resends_only_the_missing_messages(
    session: Session, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    ids = _waiting_jobs(session, WAITING)
    settings = WorkerSettings(requeue_lost_after_s=0)  # the old rule would re-send them all
    start = time.perf_counter()
    report = reconcile(settings)
    elapsed = time.perf_counter() - start
    assert report.republished == []
    assert elapsed < 5, f"one reconcile pass over {WAITING} waiting jobs took {elapsed:.2f}s"
    assert len(_messages(client)) == WAITING

    # Lose 25 messages (a partial flush): exactly those come back, once.
    lost = set(ids[::400])
    for key, raw in _messages(client):
        if any(job_id.encode() in raw for job_id in lost):
            client.lrem(key, 1, raw)
    assert len(_messages(client)) == WAITING - len(lost)
    assert set(reconcile(settings).republished) == lost
    assert len(_messages(client)) == WAITING
    resent = select(func.count()).where(JobEvent.kind == "enqueued")
    assert session.scalar(resent) == len(lost)
    assert reconcile(settings).republished == []
