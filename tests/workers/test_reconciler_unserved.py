"""On a broker that cannot be inspected (the embedded ones), a job waiting on a queue no
live worker serves is not re-sent every `requeue_lost_after_s`: nobody would take the
message, and a "re-sent by the reconciler" event every 5 minutes reads like a fault. Once
a worker serves the queue, a message older than the bound is re-sent once."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from config.worker_settings import WorkerSettings
from store import broker, job_rows, jobs
from store import workers as worker_rows
from store.models import DEFAULT_PRINCIPAL, JobEvent, utcnow
from tests.service.helpers import train_body
from trainer.spec.jobs import JOB_REQUEST_ADAPTER
from workers.reconciler import reconcile

SETTINGS = WorkerSettings(requeue_lost_after_s=60)


@pytest.fixture
def embedded_broker(monkeypatch, tmp_path, clean_db) -> Iterator[None]:
    """A SQLite-backed kombu broker, as `dgpo up` runs (its queues cannot be listed)."""

    def reset() -> None:
        get_settings.cache_clear()
        broker.reset()
        broker._producer_app.cache_clear()

    monkeypatch.setenv("DGPO_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    reset()
    yield
    monkeypatch.undo()
    reset()


def _queued_long_ago(session: Session) -> str:
    request = JOB_REQUEST_ADAPTER.validate_python(
        train_body(resources={"gpus": 1, "gpu_type": "unserved"})
    )
    row = {**jobs.new_job(request, None, DEFAULT_PRINCIPAL).values}
    row["enqueued_at"] = utcnow() - timedelta(hours=1)
    job_rows.insert_rows(session, [row])
    session.commit()
    return row["id"]


def _resent(session: Session, job_id: str) -> list[str]:
    stmt = select(JobEvent.message).where(JobEvent.job_id == job_id, JobEvent.kind == "enqueued")
    return list(session.scalars(stmt))


def test_a_job_on_an_unserved_queue_is_not_resent_until_a_worker_serves_it(
    session: Session, embedded_broker: None
) -> None:
    job_id = _queued_long_ago(session)
    assert broker.waiting_job_ids(["gpu.unserved"]) is None  # time is all it has to go by

    for _ in range(3):
        assert reconcile(SETTINGS).republished == []
    assert _resent(session, job_id) == []

    machine = worker_rows.Machine("host", "unserved", 1, 0, ["gpu.unserved"], 1)
    worker_rows.register("w-unserved", machine)
    assert reconcile(SETTINGS).republished == [job_id]
    assert reconcile(SETTINGS).republished == []  # just re-sent: not again before the bound
    assert len(_resent(session, job_id)) == 1
