"""End to end: API → Redis → real `dgpo worker` processes → tiny trainer → Postgres.

One shared CPU worker serves most tests; the crash test runs its own workers on a
queue of its own so killing one cannot disturb the others.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.worker_settings import WorkerSettings
from store import broker
from store.models import Checkpoint, EvalResult, utcnow
from tests.conftest import operator_dir
from tests.workers.conftest import (
    Api,
    WorkerProcess,
    assert_checkpoints_match_files,
    child_pids,
    paced,
    steps_recorded,
    wait_for,
)
from workers.reconciler import reconcile


def test_a_submitted_job_succeeds_with_every_step_recorded_and_verified_checkpoints(
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    job_id = api.submit(train_request(total_steps=4, every_steps=2))
    job = api.wait(job_id, cpu_worker)
    assert job["status"] == "succeeded", job["error"]
    assert (job["progress"], job["current_step"], job["attempt"]) == (1.0, 4, 1)
    assert job["eta_seconds"] == 0.0
    assert steps_recorded(session, job_id) == [1, 2, 3, 4]
    assert assert_checkpoints_match_files(session, job_id) == [2, 4]
    kinds = [e["kind"] for e in api.events(job_id)]
    assert {"train_started", "checkpoint"} <= set(kinds)
    me = wait_for(lambda: api.worker(cpu_worker.name), "the worker's registry row")
    assert (me["gpu_type"], me["gpu_count"], me["queues"], me["status"]) == (
        "cpu",
        0,
        ["cpu"],
        "alive",
    )


def test_a_killed_worker_leaves_no_trainer_behind_and_its_job_resumes_on_another_worker(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    victim = start_worker("victim", "gpu.crash")
    resources = {"gpus": 1, "gpu_type": "crash"}
    job_id = api.submit(paced(train_request(total_steps=16, every_steps=2, resources=resources)))

    def checkpointed() -> list[Any]:
        session.expire_all()
        return session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id)).all()

    wait_for(checkpointed, "the first checkpoint")
    assert child_pids(job_id)
    victim.kill9()
    wait_for(lambda: not child_pids(job_id), "the orphaned trainer to exit", timeout=30)
    assert api.job(job_id)["status"] == "running"
    expires = datetime.fromisoformat(api.job(job_id)["lease_expires_at"])
    wait_for(lambda: utcnow() > expires, "the lease to expire")
    report = reconcile(WorkerSettings(worker_dead_after_s=2))
    assert report.requeued == [job_id]
    assert victim.name in report.dead_workers

    rescuer = start_worker("rescuer", "gpu.crash")
    job = api.wait(job_id, rescuer)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    assert steps_recorded(session, job_id) == list(range(1, 17))
    starts = [e["data"]["start_step"] for e in api.events(job_id) if e["kind"] == "train_started"]
    # The rescuer resumed from a checkpoint the victim's trainer wrote (perhaps one whose
    # report the victim never relayed: the rescuer relays it first).
    assert starts[0] == 0 and len(starts) == 2 and starts[1] in (2, 4, 6, 8, 10, 12, 14)
    assert_checkpoints_match_files(session, job_id)
    rescuer.stop()


def test_jobs_queued_when_the_broker_is_flushed_still_run(
    cpu_worker: WorkerProcess,
    api: Api,
    redis_url: str,
    train_request: Callable[..., dict],
) -> None:
    redis_client = redis.Redis.from_url(redis_url)
    # Busy for longer than any machine takes to run the checks (15 steps ended first on a
    # quiet one, and the slot took a waiting job); cancelled once the flush is repaired.
    busy = api.submit(train_request(total_steps=100_000, every_steps=0))
    api.wait(busy, cpu_worker, {"running"})
    waiting = [api.submit(train_request(total_steps=2, every_steps=0)) for _ in range(2)]

    def queued_messages() -> int:
        return sum(redis_client.llen(key) for key in redis_client.keys("cpu*"))

    assert queued_messages() == 2
    redis_client.flushdb()
    assert queued_messages() == 0
    report = reconcile(WorkerSettings(requeue_lost_after_s=0))
    assert set(waiting) <= set(report.republished)
    r = api.client.post(f"/jobs/{busy}/cancel", headers=api.headers)
    assert r.status_code == 200, r.text
    assert api.wait(busy, cpu_worker)["status"] == "cancelled"
    for job_id in waiting:
        assert api.wait(job_id, cpu_worker)["status"] == "succeeded"


def test_a_message_delivered_twice_runs_the_job_once(
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    job_id = api.submit(train_request(total_steps=2, every_steps=0))
    broker.enqueue([broker.RunMessage(job_id, "cpu", 0)] * 2)
    assert api.wait(job_id, cpu_worker)["status"] == "succeeded"
    # A later job on the same FIFO queue finishing proves the duplicates were consumed.
    sentinel = api.submit(train_request(total_steps=1, every_steps=0))
    assert api.wait(sentinel, cpu_worker)["status"] == "succeeded"
    job = api.job(job_id)
    starts = [e for e in api.events(job_id) if e["data"].get("to") == "running"]
    assert (job["attempt"], len(starts)) == (1, 1)
    assert steps_recorded(session, job_id) == [1, 2]


def test_cancel_mid_run_ends_cancelled_with_a_final_checkpoint(
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    job_id = api.submit(train_request(total_steps=200, every_steps=0))
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 1, "the first step")
    wait_for(
        lambda: job_id in api.worker(cpu_worker.name).get("running_job_ids", []),
        "the worker registry to list the running job",
    )
    r = api.client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelling", r.text
    job = api.wait(job_id, cpu_worker)
    assert job["status"] == "cancelled", job["error"]
    steps = assert_checkpoints_match_files(session, job_id)
    assert len(steps) == 1 and 1 <= steps[0] < 200
    recorded = steps_recorded(session, job_id)
    assert recorded == list(range(1, steps[0] + 1)), (recorded, api.events(job_id))


def test_a_missing_dataset_fails_once_with_data_missing_and_the_worker_serves_the_next(
    cpu_worker: WorkerProcess,
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    missing = str(operator_dir("datasets") / "no-such-dataset.jsonl")  # allowed, absent
    bad = api.wait(api.submit(train_request(dataset=missing)), cpu_worker)
    assert (bad["status"], bad["attempt"], bad["max_attempts"]) == ("failed", 1, 3)
    assert bad["error"]["code"] == "data_missing" and bad["error"]["attempt"] == 1, bad["error"]
    assert "no-such-dataset.jsonl" in bad["error"]["message"]
    failed_events = [e for e in api.events(bad["id"]) if e["data"].get("to") == "failed"]
    assert len(failed_events) == 1 and failed_events[0]["data"]["error"] == bad["error"]
    assert "(data_missing); not retried" in failed_events[0]["message"]

    good = api.wait(api.submit(train_request(total_steps=1, every_steps=0)), cpu_worker)
    assert good["status"] == "succeeded", good["error"]
    assert cpu_worker.proc.poll() is None


def test_an_eval_job_scores_the_latest_checkpoint_of_a_train_job(
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    train_id = api.submit(train_request(total_steps=2, every_steps=1))
    assert api.wait(train_id, cpu_worker)["status"] == "succeeded"
    body = {
        "kind": "eval",
        "model": {"checkpoint": {"job_id": train_id, "step": "latest"}},
        "benchmarks": ["amc23"],
        "k": 2,
        "max_tokens": 8,
        "max_problems": 2,
    }
    job = api.wait(api.submit(body), cpu_worker)
    assert job["status"] == "succeeded", job["error"]
    rows = session.scalars(select(EvalResult).where(EvalResult.job_id == job["id"])).all()
    assert [(r.benchmark, r.k, len(r.per_problem["problems"])) for r in rows] == [("amc23", 2, 2)]
    assert set(rows[0].scores) == {"avg@2", "pass@1", "pass@2"}
    assert rows[0].step == 2  # the step of the checkpoint it scored, not blank

    missing = dict(body, model={"checkpoint": {"job_id": train_id, "step": 99}})
    r = api.client.post("/jobs", json=missing, headers=api.headers)  # refused before it queues
    assert r.status_code == 422 and "has no checkpoint at step 99" in r.text
