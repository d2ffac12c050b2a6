"""Outbox: a job committed but never handed to the broker still runs, without waiting
minutes: a retry with its Idempotency-Key dispatches it, and so does the next reconcile."""

from collections.abc import Callable

import redis
from sqlalchemy.orm import Session

from store import jobs
from store.models import DEFAULT_PRINCIPAL
from tests.conftest import bearer
from tests.service.helpers import broker_messages
from tests.workers.conftest import Api, WorkerProcess
from trainer.spec.jobs import JOB_REQUEST_ADAPTER
from workers.reconciler import reconcile


def _commit_without_publishing(session: Session, body: dict, key: str | None) -> str:
    """What `POST /jobs` leaves when the API dies between its commit and its publish: a
    queued job whose row says it was handed to the broker (it is inserted so), no message."""
    new = jobs.new_job(JOB_REQUEST_ADAPTER.validate_python(body), key, DEFAULT_PRINCIPAL)
    ((job, replayed),) = jobs.insert_jobs(session, [new])  # type: ignore[misc]
    assert not replayed and job["enqueued_at"] is not None
    return job["id"]


def test_a_job_never_dispatched_runs_after_a_replay_or_a_reconcile(
    cpu_worker: WorkerProcess,
    api: Api,
    tokens: dict[str, str],
    session: Session,
    redis_url: str,
    train_request: Callable[..., dict],
) -> None:
    body = train_request(total_steps=2, every_steps=0)
    crashed = _commit_without_publishing(session, body, "retry-me")
    assert all(args != [crashed] for _, args, _ in broker_messages(redis_url, "cpu"))

    headers = {**bearer(tokens["submit"]), "Idempotency-Key": "retry-me"}
    replay = api.client.post("/jobs", json=body, headers=headers)
    assert replay.status_code == 200 and replay.json()["id"] == crashed
    assert replay.json()["enqueued_at"] is not None
    assert api.wait(crashed, cpu_worker)["status"] == "succeeded"

    # No key to replay, and the broker lost everything: the reconciler's next pass (every
    # 30 s, default settings) re-sends what is still queued. A slot that got `flushed`'s
    # message before the flush claimed the oldest queued job, `silent`, and handed that
    # message back (`store.placement`): then only `flushed` is left to re-send.
    silent = _commit_without_publishing(session, body, None)
    flushed = api.submit(body)
    redis.Redis.from_url(redis_url).flushdb()
    resent = reconcile().republished
    assert set(resent) <= {silent, flushed}, resent  # both, unless a slot had one
    for job_id in (silent, flushed):
        job = api.wait(job_id, cpu_worker)
        assert (job["status"], job["attempt"]) == ("succeeded", 1), job["error"]
