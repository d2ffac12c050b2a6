"""The fleet policy with real `dgpo worker` processes, Postgres and Redis: placement by
GPU count (CPU slots advertising fake GPUs through `DGPO_WORKER_GPUS`), a transient
failure retried after its back-off, and two principals sharing two slots fairly."""

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AttemptUsage, TokenScope
from store.tokens import create_token
from tests.conftest import bearer
from tests.workers.conftest import Api, WorkerProcess, child_pids, paced, wait_for
from workers.reconciler import reconcile


def claims(api: Api, job_id: str) -> list[dict]:
    return [e for e in api.events(job_id) if e["data"].get("to") == "running"]


def test_a_two_gpu_job_is_never_claimed_by_a_one_gpu_slot_and_runs_on_a_two_gpu_slot(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    narrow = start_worker("narrow", "gpu.shape", {"DGPO_WORKER_GPUS": "0"})
    answer = api.client.post(
        "/jobs",
        json=train_request(total_steps=1, resources={"gpus": 2, "gpu_type": "shape"}),
        headers=api.headers,
    ).json()
    job_id = answer["id"]
    assert any("has a slot with 2 GPUs (the largest has 1)" in w for w in answer["warnings"])
    wait_for(lambda: "needs 2 GPUs; this slot holds 1" in narrow.output(), "a hand-back")
    time.sleep(3)  # a few more hand-backs: none of them claims or counts an attempt
    job = api.job(job_id)
    assert (job["status"], job["attempt"], claims(api, job_id)) == ("queued", 0, [])
    wide = start_worker("wide", "gpu.shape", {"DGPO_WORKER_GPUS": "0,1"})
    job = api.wait(job_id, wide)
    assert (job["status"], job["attempt"]) == ("succeeded", 1), job["error"]
    assert [c["data"]["owner"] for c in claims(api, job_id)] == [wide.name]
    narrow.stop()
    wide.stop()


def test_a_killed_child_is_retried_after_its_back_off_with_code_killed(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("backoff", "gpu.backoff", {"DGPO_RETRY": '{"backoff_s": 4}'})
    request = paced(
        train_request(total_steps=12, every_steps=2, resources={"gpus": 1, "gpu_type": "backoff"})
    )
    job_id = api.submit(request)
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 2, "step 2")
    (child,) = child_pids(job_id)
    os.kill(child, signal.SIGKILL)
    job = api.wait(job_id, worker, {"queued"})
    assert job["error"] == {
        "code": "killed",
        "message": "trainer process was killed by SIGKILL",
        "attempt": 1,
    }
    (requeued,) = [e for e in api.events(job_id) if e["data"].get("to") == "queued"]
    assert requeued["data"]["retry_in_s"] == 4 and requeued["data"]["error"] == job["error"]
    assert (
        "failed (killed: trainer process was killed by SIGKILL); retrying after 4 s"
        in (requeued["message"])
    )
    not_before = datetime.fromisoformat(job["not_before"])
    reconcile()  # not due yet: the reconciler leaves it alone and nothing claims it
    assert api.job(job_id)["status"] == "queued"
    wait_for(lambda: reconcile().republished == [job_id], "the reconciler to send it when due")
    job = api.wait(job_id, worker)
    assert (job["status"], job["attempt"]) == ("succeeded", 2), job["error"]
    retried = datetime.fromisoformat(claims(api, job_id)[-1]["ts"])
    assert retried >= not_before
    # Usage: each attempt's recorded time, summed, is what `attempt_usage` holds.
    session.expire_all()
    rows = session.scalars(select(AttemptUsage).where(AttemptUsage.job_id == job_id)).all()
    assert [(r.attempt, r.outcome, r.gpus) for r in rows] == [(1, "queued", 1), (2, "succeeded", 1)]
    for r in rows:
        assert r.wall_seconds == (r.ended_at - r.started_at).total_seconds() == r.gpu_seconds
    worker.stop()


def test_two_principals_of_equal_weight_share_two_slots(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    """Team a submits first, then team b; both wait when the 2-slot worker starts. While
    both have work waiting, each holds one slot: the share of slot time is measured."""
    per_team = 3
    teams = {t: bearer(create_token(session, t, TokenScope.SUBMIT, t)) for t in ("a", "b")}
    request = train_request(total_steps=1, every_steps=0, resources={"gpus": 1, "gpu_type": "fair"})
    ids = {
        team: [
            api.client.post("/jobs", json=request, headers=h).json()["id"] for _ in range(per_team)
        ]
        for team, h in teams.items()
    }
    worker = start_worker("fair", "gpu.fair", slots=2)

    last_pass = [time.monotonic()]

    def all_ended() -> bool:
        if time.monotonic() - last_pass[0] > 10:  # as beat would: a parallel test run
            reconcile()  # sharing this Redis index may have flushed the messages
            last_pass[0] = time.monotonic()
        return all(api.job(i)["status"] == "succeeded" for i in ids["a"] + ids["b"])

    wait_for(all_ended, "every job to succeed", timeout=900)
    session.expire_all()
    rows = sorted(session.scalars(select(AttemptUsage)).all(), key=lambda r: r.started_at)
    order = [r.owner for r in rows]
    # Each claim went to a principal holding no more slots than the other, unless the
    # other had nothing left to claim.
    for i, row in enumerate(rows):
        running = Counter(r.owner for r in rows[:i] if r.ended_at > row.started_at)
        other = "b" if row.owner == "a" else "a"
        other_left = per_team - order[:i].count(other)
        assert running[row.owner] <= running[other] or other_left == 0, (i, order)
    both_waiting_until = min(max(r.started_at for r in rows if r.owner == t) for t in teams)
    share = {
        t: sum(
            (min(r.ended_at, both_waiting_until) - r.started_at).total_seconds()
            for r in rows
            if r.owner == t and r.started_at < both_waiting_until
        )
        for t in teams
    }
    print(f"claim order {''.join(order)}; slot-seconds while both waited: {share}")
    assert 0.35 < share["a"] / (share["a"] + share["b"]) < 0.65, share
    worker.stop()


def test_a_drained_worker_finishes_its_job_claims_no_more_and_loses_nothing(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("drainee", "gpu.drain")
    request = train_request(
        total_steps=4, every_steps=2, resources={"gpus": 1, "gpu_type": "drain"}
    )
    first = api.submit(request)
    wait_for(lambda: api.job(first)["status"] == "running", "the first job to start")
    drained = api.client.post(f"/workers/{worker.name}/drain", headers=api.headers)
    assert drained.status_code == 200, drained.text
    assert (drained.json()["status"], drained.json()["running_job_ids"]) == ("draining", [first])
    second = api.submit(request)
    assert api.wait(first, worker)["status"] == "succeeded"
    wait_for(lambda: api.worker(worker.name).get("status") == "drained", "the worker to drain")
    wait_for(lambda: "is draining" in worker.output(), "the second job's message handed back")
    assert (api.job(second)["status"], api.job(second)["attempt"]) == ("queued", 0)
    worker.stop()
    rescuer = start_worker("undrained", "gpu.drain")
    assert api.wait(second, rescuer)["status"] == "succeeded"
    rescuer.stop()
