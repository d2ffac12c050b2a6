"""A database connection reset (restart, failover, `pg_terminate_backend`) costs no job.

Real `dgpo worker` processes on a queue of their own; every backend of the test database
(workers', the API's, this process's) is terminated while a job runs and while a worker
sits idle with pooled connections just before its next claim. Every job still succeeds,
at attempt 1: the fault is retried, never counted against the job.
"""

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Metric
from tests.conftest import PG_ADMIN_DSN, TEST_DB, free_port
from tests.workers.conftest import Api, WorkerProcess, steps_recorded, wait_for

RESOURCES = {"gpus": 1, "gpu_type": "dbfault"}


def terminate_every_backend() -> int:
    """What a Postgres restart does to clients: every connection to the test database dies."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return len(
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (TEST_DB,),
            ).fetchall()
        )


def test_jobs_survive_every_backend_terminated_mid_run_and_before_a_claim(
    start_worker: Callable[[str, str], WorkerProcess],
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("dbfault", "gpu.dbfault")
    running = [
        api.submit(train_request(total_steps=12, every_steps=3, resources=RESOURCES))
        for _ in range(2)
    ]

    def first_steps() -> bool:
        session.expire_all()
        return session.scalar(select(Metric.id).where(Metric.job_id == running[0])) is not None

    wait_for(first_steps, "the first job's first metrics")
    # Terminate over and over while jobs run, so writes die mid-transaction too.
    stop = threading.Event()
    killed: list[int] = []

    def storm() -> None:
        while not stop.wait(0.25):
            killed.append(terminate_every_backend())

    storm_thread = threading.Thread(target=storm, daemon=True)
    storm_thread.start()
    try:
        time.sleep(4)
    finally:
        stop.set()
        storm_thread.join()
    assert sum(killed) > 0
    session.invalidate()  # its connection died too; the next query takes a fresh one
    for job_id in running:
        job = api.wait(job_id, worker)
        assert (job["status"], job["attempt"]) == ("succeeded", 1), (job["error"], killed)
        assert steps_recorded(session, job_id) == list(range(1, 13))

    # The worker is idle now with pooled connections; they all die just before a claim.
    session.invalidate()
    assert terminate_every_backend() > 0
    job_id = api.submit(train_request(total_steps=2, every_steps=0, resources=RESOURCES))
    job = api.wait(job_id, worker)
    assert (job["status"], job["attempt"]) == ("succeeded", 1), job["error"]
    worker.stop()


def test_a_claim_that_cannot_reach_the_database_is_rejected_not_acked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """After its retries, a claim that still finds no database raises Celery's
    `Reject(requeue=True)`: the broker gets the message back instead of an ack."""
    from celery.exceptions import Reject

    from config.settings import get_settings
    from store import db
    from store.models import new_id
    from workers.tasks import run_job

    monkeypatch.setenv(
        "DGPO_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
    )
    monkeypatch.setenv("DGPO_DB_RETRY_BUDGET_S", "0.5")
    get_settings.cache_clear()
    db.reset()
    try:
        with pytest.raises(Reject) as rejected:
            run_job(new_id())
        assert rejected.value.requeue
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        db.reset()
