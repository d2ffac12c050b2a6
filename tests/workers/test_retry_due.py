"""A retry waiting out its back-off is sent when the back-off ends, not at the reconciler's
next periodic pass: real `dgpo worker` and `dgpo beat` processes, Postgres and Redis."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from tests.conftest import REPO_ROOT
from tests.workers.conftest import Api, WorkerProcess, child_pids, paced, wait_for

PERIOD_S = 600
"""The periodic pass: far beyond the test, so only a pass scheduled at the back-off's end
can send the retry in time."""


@pytest.fixture
def beat(postgres_url: str, redis_url: str) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "DGPO_RECONCILE_EVERY_S": str(PERIOD_S)}
    process = subprocess.Popen(
        [sys.executable, "-m", "dgpo", "beat", "--loglevel", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    yield process
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_a_retry_is_claimed_when_its_back_off_ends(
    beat: subprocess.Popen,
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("due", "gpu.due", {"DGPO_RETRY": '{"backoff_s": 3}'})
    resources = {"gpus": 1, "gpu_type": "due"}
    job_id = api.submit(paced(train_request(total_steps=24, every_steps=12, resources=resources)))
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 2, "step 2")
    (child,) = child_pids(job_id)
    os.kill(child, signal.SIGKILL)
    queued = api.wait(job_id, worker, {"queued"})
    not_before = datetime.fromisoformat(queued["not_before"])
    job = api.wait(job_id, worker, timeout=240)
    assert (job["status"], job["attempt"]) == ("succeeded", 2), job["error"]
    claims = [e for e in api.events(job_id) if e["data"].get("to") == "running"]
    waited = (datetime.fromisoformat(claims[-1]["ts"]) - not_before).total_seconds()
    print(f"retry claimed {waited:.2f} s after its back-off ended")
    assert 0 <= waited < PERIOD_S / 10, waited
    worker.stop()
