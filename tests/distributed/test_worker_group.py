"""A `gpus: 2` job through the API runs as a 2-rank torchrun group under a real worker,
and as a gang of two 1-rank members on two workers (`nodes: 2`, `store.gangs`).

The workers serve `gpu.*` queues on this CPU-only host, so the ranks use gloo. Rank 0
reports through the same channel as a single process, so the database ends up the same
for one process, one group and one gang. A rank
killed mid-run fails the attempt with torchrun's report and the job is retried;
cancelling the retry stops the whole group after a final checkpoint.
"""

import os
import shutil
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Checkpoint, EvalResult
from tests.workers.conftest import (
    Api,
    WorkerProcess,
    assert_checkpoints_match_files,
    job_dir,
    steps_recorded,
    submit_seeded,
    wait_for,
)

GROUP = {"gpus": 2}
GANG = {"gpus": 2, "nodes": 2, "gpu_type": "gang"}
GANG_WORKER_ENV = {"DGPO_WORKER_GPUS": "0", "DGPO_STORAGE_SHARED": "true"}
"""One GPU each (each member runs one rank), on storage the operator declared shared
(both run on this host: one file system)."""


@pytest.fixture(scope="module")
def group_worker(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    """Stopped with this module, so later modules do not see it heartbeat into their fleet."""
    worker = start_worker("group", "gpu.any")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def gang_workers(start_worker: Callable[..., WorkerProcess]) -> Iterator[list[WorkerProcess]]:
    """Two workers of one GPU each on queue `gpu.gang`: a 2-node job needs both."""
    workers = [start_worker(f"gang-{x}", "gpu.gang", GANG_WORKER_ENV) for x in "ab"]
    yield workers
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="module")
def solo_worker(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    """The 1-process side of the comparison; stopped with this module too (the session's
    shared `cpu_worker` would go on consuming the `cpu` queue under later modules)."""
    worker = start_worker("solo", "cpu")
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


def reported(session: Session, api: Api, job_id: str) -> dict[str, Any]:
    """What the trainer reported about a job, minus what differs by design (paths, times)."""
    session.expire_all()
    evals = session.execute(
        select(EvalResult.benchmark, EvalResult.step, EvalResult.k)
        .where(EvalResult.job_id == job_id)
        .order_by(EvalResult.step)
    ).all()
    checkpoints = session.scalars(
        select(Checkpoint.step).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
    ).all()
    service_kinds = ("submitted", "enqueued", "status", "gang_placed")
    kinds = [e["kind"] for e in api.events(job_id) if e["kind"] not in service_kinds]
    return {
        "events": Counter(kinds),
        "evals": [tuple(row) for row in evals],
        "metrics": steps_recorded(session, job_id),
        "checkpoints": list(checkpoints),
    }


def test_a_group_and_a_gang_report_evals_and_trainer_events_exactly_like_one_process(
    group_worker: WorkerProcess,
    gang_workers: list[WorkerProcess],
    solo_worker: WorkerProcess,
    client: TestClient,
    tokens: dict[str, str],
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    """Both runs resume from the same checkpoint past a corrupt newer one, then train and
    evaluate steps 2 and 3: the same rows and events must reach Postgres."""
    api = Api(client, tokens)
    seed = train_request(total_steps=1, every_steps=1)
    seed_id = api.submit(seed)
    assert api.wait(seed_id, solo_worker)["status"] == "succeeded"
    (checkpoint,) = job_dir(seed_id, seed).glob("step-*")

    def resumable_past_a_corrupt_checkpoint(out: Path) -> None:
        shutil.copytree(checkpoint, out / checkpoint.name)
        shutil.copytree(checkpoint, out / "step-00000009")
        (out / "step-00000009" / "config.json").write_text("{}")

    jobs = {}
    for name, resources in (("solo", {"gpus": 0}), ("group", GROUP), ("gang", GANG)):
        body = train_request(total_steps=3, every_steps=1, resources=resources)
        body["eval"] = {"every_steps": 1, "benchmarks": ["amc23"], "k": 1, "max_problems": 1}
        jobs[name] = submit_seeded(body, resumable_past_a_corrupt_checkpoint)
    workers = {"solo": solo_worker, "group": group_worker, "gang": gang_workers[0]}
    for name, worker in workers.items():
        job = api.wait(jobs[name], worker, timeout=240)
        assert job["status"] == "succeeded", job["error"]
    solo, group, gang = (reported(session, api, jobs[name]) for name in workers)
    assert group == solo
    assert gang == solo
    for name in workers:  # the note's figure: published message to all ranks training
        events = api.events(jobs[name])
        start = next(e["ts"] for e in events if e["kind"] == "train_started")
        sent = next(e["ts"] for e in events if e["kind"] in ("submitted", "enqueued"))
        took = (datetime.fromisoformat(start) - datetime.fromisoformat(sent)).total_seconds()
        print(f"{name}: message sent -> every rank training after {took:.1f} s")
    placed = [e for e in api.events(jobs["gang"]) if e["kind"] == "gang_placed"]
    assert [sorted(e["data"]["workers"]) for e in placed] == [[w.name for w in gang_workers]]
    assert solo == {
        "events": Counter(
            {"checkpoint_rejected": 1, "resumed": 1, "train_started": 1, "eval": 2, "checkpoint": 2}
        ),
        "evals": [("amc23", 2, 1), ("amc23", 3, 1)],
        "metrics": [2, 3],
        "checkpoints": [2, 3],
    }


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
    error = requeued[0]["data"]["error"]
    assert error["code"] == "killed" and error["message"].endswith("was killed by SIGKILL"), error
    assert "Root Cause" in requeued[0]["data"]["output_tail"], requeued[0]

    def retry_started() -> bool:
        return any(e["kind"] == "train_started" and e["attempt"] == 2 for e in api.events(job_id))

    wait_for(retry_started, "the retry to start training")
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 1, "the retry's first steps")
    r = client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert r.status_code == 200, r.text
    job = api.wait(job_id, group_worker)
    assert job["status"] == "cancelled", job["error"]
    steps = assert_checkpoints_match_files(session, job_id)
    assert len(steps) == 1 and 1 <= steps[0] < 400
    wait_for(lambda: not rank_pids(job_id, 0) and not rank_pids(job_id, 1), "the group to exit")
