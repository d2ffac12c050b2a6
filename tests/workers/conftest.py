"""Real `dgpo worker` subprocesses, the tiny model, a tiny train spec, and the job API as
the e2e tests drive it (`api`)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Checkpoint, Metric
from tests.conftest import REPO_ROOT, TEST_HOME, bearer, operator_dir
from trainer.checkpoints.local import MANIFEST
from trainer.devices import CPU_STANDS_IN_ENV

MLFLOW_TRACKING_URI = f"sqlite:///{TEST_HOME}/mlflow.db"
"""Where workers' MLflow runs go: the tracking URI comes from the worker's environment."""

WORKER_ENV = {
    # Short leases so a killed worker's job is recoverable within seconds.
    "DGPO_LEASE_S": "4",
    "DGPO_LEASE_RENEW_S": "1",
    "DGPO_WORKER_HEARTBEAT_S": "1",
    "DGPO_STOP_POLL_S": "0",
    "DGPO_METRICS_BATCH": "4",
    "DGPO_KILL_GRACE_S": "2",
    # Jobs asking for GPUs run on this CPU-only host (tests/workers/test_gpu_jobs.py: without).
    CPU_STANDS_IN_ENV: "1",
    # Retry a transient failure at once: tests of the back-off set their own.
    "DGPO_RETRY": '{"backoff_s": 0}',
    "MLFLOW_TRACKING_URI": MLFLOW_TRACKING_URI,
}
FAKE_GPUS = {"DGPO_WORKER_GPUS": "0,1"}
"""What a worker on a `gpu.*` queue advertises unless a test says otherwise: two GPUs in
its one slot (this host has none; the jobs' ranks run on CPU with gloo)."""


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def child_pids(job_id: str) -> list[int]:
    """Processes of `job_id`'s attempt: every supervised process whose command line names
    the job, or whose output goes to the job's files (a spare child that took the attempt,
    `workers.spare_child`)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"trainer.supervised" not in cmdline:
                continue
            if job_id.encode() in cmdline or job_id in os.readlink(proc / "fd" / "1"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


class WorkerProcess:
    """One `python -m dgpo worker` process group (parent and its pool children)."""

    def __init__(
        self,
        name: str,
        queues: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        slots: int = 1,
    ) -> None:
        self.name = f"{name}@test"
        self.log_path = log_path
        self.log = log_path.open("wb")
        gpus = FAKE_GPUS if "gpu." in queues else {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dgpo", "worker", "--queues", queues, "--slots", str(slots),
             "--name", self.name, "--loglevel", "INFO"],
            cwd=REPO_ROOT,
            env={**os.environ, **WORKER_ENV, **gpus, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self) -> None:
        from store.db import get_sessionmaker
        from store.models import Worker

        def registered() -> bool:
            assert self.proc.poll() is None, f"worker exited:\n{self.output()}"
            with get_sessionmaker()() as session:
                return session.scalar(select(Worker.id).where(Worker.id == self.name)) is not None

        wait_for(registered, f"worker {self.name} to register", timeout=120)

    def kill9(self) -> None:
        """A machine crash: SIGKILL the whole group, no chance to clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]


TERMINAL = {"succeeded", "failed", "cancelled"}


class Api:
    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client, self.headers = client, bearer(tokens["admin"])

    def submit(self, body: dict[str, Any]) -> str:
        r = self.client.post("/jobs", json=body, headers=self.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/jobs/{job_id}", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return self.client.get(f"/jobs/{job_id}/events", headers=self.headers).json()

    def worker(self, name: str) -> dict[str, Any]:
        """The registry row (an empty dict until the worker's heartbeat re-registers it
        after `clean_db` emptied the tables)."""
        workers = self.client.get("/workers", headers=self.headers).json()
        return next((w for w in workers if w["id"] == name), {})

    def wait(
        self,
        job_id: str,
        worker: WorkerProcess,
        statuses: set[str] = TERMINAL,
        timeout: float = 90.0,
    ) -> dict:
        def reached() -> dict | None:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        try:
            return wait_for(reached, f"job {job_id} to reach {statuses}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{worker.output()}") from None


def steps_recorded(session: Session, job_id: str) -> list[int]:
    session.expire_all()
    query = select(Metric.step).where(Metric.job_id == job_id).order_by(Metric.step, Metric.id)
    return list(session.scalars(query).all())


def assert_checkpoints_match_files(session: Session, job_id: str) -> list[int]:
    """Every checkpoint row names a directory whose manifest hashes to the row's sha256
    and whose files hash to what the manifest lists."""
    rows = session.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
    ).all()
    for row in rows:
        directory = Path(row.uri)
        manifest = directory / MANIFEST
        assert hashlib.sha256(manifest.read_bytes()).hexdigest() == row.sha256
        listed = json.loads(manifest.read_text())["files"]
        for rel, digest in listed.items():
            assert hashlib.sha256((directory / rel).read_bytes()).hexdigest() == digest, rel
        assert row.size_bytes > 0
    return [row.step for row in rows]


@pytest.fixture(scope="session")
def start_worker(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory for worker processes (name, queues, extra environment, slots); every one
    still alive is stopped at session end."""
    started: list[WorkerProcess] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        name: str, queues: str, env: dict[str, str] | None = None, slots: int = 1
    ) -> WorkerProcess:
        worker = WorkerProcess(name, queues, logs / f"{name}.log", env, slots)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


def job_dir(job_id: str, body: dict[str, Any]) -> Path:
    """Where the worker puts job `job_id`'s checkpoints (its own directory)."""
    from trainer.spec.jobs import JOB_REQUEST_ADAPTER
    from workers.supervisor import job_output_dir

    return Path(job_output_dir(job_id, JOB_REQUEST_ADAPTER.validate_python(body).spec()))


def submit_seeded(body: dict[str, Any], seed: Callable[[Path], object]) -> str:
    """Submit `body` with files already in the job's own output directory, as an earlier
    attempt would have left them: commit the job, `seed(its directory)`, then publish it
    (a job can name no other directory to resume from)."""
    from store import jobs
    from store.db import get_sessionmaker
    from store.models import DEFAULT_PRINCIPAL
    from trainer.spec.jobs import JOB_REQUEST_ADAPTER
    from workers.reconciler import republish

    request = JOB_REQUEST_ADAPTER.validate_python(body)
    with get_sessionmaker()() as session:
        ((job, _),) = jobs.insert_jobs(session, [jobs.new_job(request, None, DEFAULT_PRINCIPAL)])
    seed(job_dir(job["id"], body))
    assert republish(job["id"]), "the broker refused the run message"
    return job["id"]


@pytest.fixture
def single_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs submitted by this test get one attempt: a failure is final at once."""
    from config.settings import get_settings

    monkeypatch.setattr(get_settings(), "default_max_attempts", 1)


@pytest.fixture(scope="session")
def cpu_worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """The worker shared by most tests: serves the `cpu` queue."""
    return start_worker("shared", "cpu")


@pytest.fixture(scope="session")
def tiny_assets() -> dict[str, str]:
    from trainer.data.tiny import build_tiny_model, write_toy_dataset

    return {
        "model": str(build_tiny_model(operator_dir("models"))),
        "data": str(write_toy_dataset(operator_dir("datasets") / "toy.jsonl", num_prompts=32)),
    }


@pytest.fixture
def train_request(tiny_assets: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """A `POST /jobs` body for a seconds-long tiny run; keyword overrides per test."""

    def make(
        total_steps: int = 4,
        every_steps: int = 2,
        dataset: str | None = None,
        resources: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "kind": "train",
            "model": {"path": tiny_assets["model"]},
            "dataset": {"path": dataset or tiny_assets["data"]},
            "prompt": {"instruction": "", "use_chat_template": False},
            "algorithm": {"group_size": 2, "reward": "contains"},
            "rollout": {"max_prompt_tokens": 16, "max_response_tokens": 4, "batch_size": 4},
            "optim": {"prompts_per_step": 2, "mini_batch_prompts": 2, "micro_batch_size": 4},
            "total_steps": total_steps,
            "checkpoint": {"every_steps": every_steps, "keep_last": 10},
            "resources": resources or {"gpus": 0},
        }

    return make


def paced(body: dict) -> dict:
    """`body` with responses of 64 tokens, not 4, for a test that acts on a job mid-run:
    a step takes 0.45 s on one thread of this loaded 2-core host instead of 0.06, so the
    steps left once a test sees step N outlast the way of its signal or stop to the
    trainer (a 0.2 s relay poll shows the step, a 0.2 s stop poll sees a request, then the
    next step boundary) on a fast machine too: there, at 4 tokens, a 24-step job ran to
    its end before a preemption landed."""
    return {**body, "rollout": {**body["rollout"], "max_response_tokens": 64}}


@pytest.fixture
def api(client: TestClient, tokens: dict[str, str]) -> Api:
    """The job API with an admin token, for tests that drive real workers through it."""
    return Api(client, tokens)
