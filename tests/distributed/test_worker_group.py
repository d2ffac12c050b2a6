"""A `gpus: 2` job through the API runs as a 2-rank torchrun group under a real worker.

The worker serves `gpu.any` on this CPU-only host, so the ranks use gloo. A rank killed
mid-run fails the attempt with torchrun's report and the job is retried; cancelling the
retry stops the whole group after a final checkpoint.
"""

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.workers.conftest import WorkerProcess, wait_for
from tests.workers.test_worker_e2e import Api, assert_checkpoints_match_files, steps_recorded

GROUP = {"gpus": 2}


@pytest.fixture(scope="module")
def group_worker(start_worker: Callable[[str, str], WorkerProcess]) -> Iterator[WorkerProcess]:
    """Stopped with this module, so later modules do not see it heartbeat into their fleet."""
    worker = start_worker("group", "gpu.any")
    yield worker
    worker.stop()


def rank_pids(job_id: str, rank: int) -> list[int]:
    """Training processes of `job_id` whose torchrun RANK is `rank` (not torchrun itself)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"trainer.cli" not in cmdline or b"torch.distributed.run" in cmdline:
                continue
            if not any(job_id.encode() in arg for arg in cmdline):
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"RANK={rank}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_a_two_gpu_job_runs_as_a_torchrun_group_and_succeeds(
    group_worker: WorkerProcess,
    client: TestClient,
    tokens: dict[str, str],
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    api = Api(client, tokens)
    job_id = api.submit(train_request(total_steps=2, every_steps=1, resources=GROUP))
    job = api.wait(job_id, group_worker)
    assert job["status"] == "succeeded", job["error"]
    assert (job["current_step"], job["attempt"]) == (2, 1)
    assert steps_recorded(session, job_id) == [1, 2]
    assert assert_checkpoints_match_files(session, job_id) == [1, 2]
    assert any(e["message"].startswith("attempt 1: steps 1..2") for e in api.events(job_id))


def test_a_killed_rank_fails_the_attempt_and_the_retry_can_be_cancelled(
    group_worker: WorkerProcess,
    client: TestClient,
    tokens: dict[str, str],
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    api = Api(client, tokens)
    job_id = api.submit(train_request(total_steps=400, every_steps=0, resources=GROUP))
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 1, "the group's first steps")
    (victim,) = wait_for(lambda: rank_pids(job_id, 1), "rank 1 of the group")
    os.kill(victim, signal.SIGKILL)

    wait_for(lambda: api.job(job_id)["attempt"] == 2, "the retry of the failed attempt")
    requeued = [
        e
        for e in api.events(job_id)
        if e["kind"] == "status" and e["data"].get("to") == "queued" and e["attempt"] == 1
    ]
    assert len(requeued) == 1, api.events(job_id)
    assert "Root Cause" in requeued[0]["data"]["error"], requeued[0]

    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 1, "the retry's first steps")
    r = client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert r.status_code == 200, r.text
    job = api.wait(job_id, group_worker)
    assert job["status"] == "cancelled", job["error"]
    steps = assert_checkpoints_match_files(session, job_id)
    assert len(steps) == 1 and 1 <= steps[0] < 400
    wait_for(lambda: not rank_pids(job_id, 0) and not rank_pids(job_id, 1), "the group to exit")
