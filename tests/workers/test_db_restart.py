"""A database outage longer than the retry budget costs the job no attempt (issue 24, 4).

A Postgres server of the test's own (initdb on a free port, so stopping it disturbs no
one else's tests) is stopped for longer than the worker's retry budget and its lease, at
a running job's step 2, then started again. The slot gives up on its writes, so only the
reconciler's lease-expiry path can re-queue the job: it must see that the lease lapsed
because the database restarted, and not count the attempt.
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from config.worker_settings import WorkerSettings
from tests.conftest import free_port, migrate
from tests.workers.conftest import WorkerProcess, child_pids, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
LEASE = {"DGPO_LEASE_S": "4", "DGPO_LEASE_RENEW_S": "1", "DGPO_DB_RETRY_BUDGET_S": "2"}


class PrivatePostgres:
    """A throwaway Postgres cluster run by the `postgres` user, trust auth, fsync off."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.data = root / "data"
        self._as_postgres(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                          "--no-sync")  # fmt: skip
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: object) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], check=True,
                       capture_output=True, timeout=120)  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l",
                          self.root / "log", "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")


@pytest.fixture
def private_postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivatePostgres]:
    """A private server, migrated, that this process's store uses for the test."""
    from config.settings import get_settings
    from store import db

    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists():
        message = "needs root and Debian's postgresql-15 server binaries (as .ci/run has)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="dgpo-pg-"))
    shutil.chown(root, "postgres")
    server = PrivatePostgres(root)
    server.start()
    try:
        migrate(server.url)
        monkeypatch.setenv("DGPO_DATABASE_URL", server.url)
        get_settings.cache_clear()
        db.reset()
        yield server
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        db.reset()
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_a_lease_that_lapsed_while_the_database_was_down_costs_no_attempt(
    private_postgres: PrivatePostgres,
    start_worker: Callable[..., WorkerProcess],
    redis_url: str,
    train_request: Callable[..., dict],
) -> None:
    from store import jobs
    from store.db import get_sessionmaker
    from store.models import DEFAULT_PRINCIPAL, Job, Metric
    from trainer.spec.jobs import JOB_REQUEST_ADAPTER
    from workers.reconciler import reconcile, republish

    env = {"DGPO_DATABASE_URL": private_postgres.url, **LEASE}
    worker = start_worker("dbrestart", "gpu.dbrestart", env)
    resources = {"gpus": 1, "gpu_type": "dbrestart"}
    request = JOB_REQUEST_ADAPTER.validate_python(
        train_request(total_steps=40, every_steps=2, resources=resources)
    )
    with get_sessionmaker()() as session:
        ((job, _),) = jobs.insert_jobs(session, [jobs.new_job(request, None, DEFAULT_PRINCIPAL)])
    job_id = job["id"]
    assert republish(job_id), "the broker refused the run message"

    def steps() -> list[int]:
        with get_sessionmaker()() as session:
            query = select(Metric.step).where(Metric.job_id == job_id).order_by(Metric.step)
            return list(session.scalars(query))

    wait_for(lambda: len(steps()) >= 2, "the job's first steps", timeout=180)
    private_postgres.stop()
    # The trainer fences itself (stale heartbeat), the slot's writes give up after their
    # budget, and the lease runs out: all while the database is away.
    wait_for(lambda: not child_pids(job_id), "the trainer to stop while the database is away")
    time.sleep(2 * float(LEASE["DGPO_LEASE_S"]) + float(LEASE["DGPO_DB_RETRY_BUDGET_S"]))
    private_postgres.start()

    settings = WorkerSettings(lease_s=float(LEASE["DGPO_LEASE_S"]), lease_renew_s=1)
    recovered = wait_for(
        lambda: reconcile(settings).requeued, "the reconciler to re-queue the lapsed lease"
    )
    assert recovered == [job_id]

    def finished() -> Job | None:
        with get_sessionmaker()() as session:
            job = session.get_one(Job, job_id)
            return job if job.status in ("succeeded", "failed") else None

    try:
        job = wait_for(finished, "the job to finish after the outage", timeout=300)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.output()}") from None
    assert (job.status, job.attempt, job.error_code) == ("succeeded", 1, None), job.error
    assert steps() == list(range(1, 41))
    worker.stop()
