"""Each attempt runs in a child process tree that the worker slot supervises.

Real `dgpo worker` processes, Postgres and Redis, the tiny model. What is proven here:
a cancel always lands (a step that takes minutes is killed after the grace), a killed
child is retried with its cause and loses no metric step, a child over its memory limit
fails with a cause that says so, the slot's memory stays at its idle size, a lost
lease ends the child at once, and each child of a 2-slot worker gets half the cores.
"""

import os
import shutil
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from config.worker_settings import WorkerSettings
from store.models import Job, utcnow
from tests.workers.conftest import (
    Api,
    WorkerProcess,
    assert_checkpoints_match_files,
    child_pids,
    job_dir,
    paced,
    steps_recorded,
    submit_seeded,
    wait_for,
)
from trainer.checkpoints.local import verify_checkpoint
from workers.cpus import available_cores
from workers.reconciler import reconcile


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def pool_pid(worker: WorkerProcess) -> int:
    """The worker's one pool process (the slot that supervises attempts)."""

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == worker.proc.pid:
                found.append(int(stat.parent.name))
        return found

    (pid,) = wait_for(children, "the worker's pool process")
    return pid


def slow_step(request: dict[str, Any]) -> dict[str, Any]:
    """The same run, but each step generates 64 responses of ~1000 tokens: minutes on CPU."""
    return {
        **request,
        "algorithm": {"group_size": 8, "reward": "contains"},
        "rollout": {"max_prompt_tokens": 16, "max_response_tokens": 1000, "batch_size": 64},
        "optim": {"prompts_per_step": 8, "mini_batch_prompts": 8, "micro_batch_size": 8},
    }


def test_a_cancel_mid_step_terminates_the_child_after_the_grace_and_keeps_the_checkpoint(
    cpu_worker: WorkerProcess,
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    fast_body = train_request(total_steps=1, every_steps=1)
    fast = api.submit(fast_body)
    assert api.wait(fast, cpu_worker)["status"] == "succeeded"
    (seed,) = job_dir(fast, fast_body).glob("step-*")

    slow = slow_step(train_request(total_steps=3, every_steps=1))
    slow["checkpoint"] |= {"cancel_grace_s": 2}
    job_id = submit_seeded(slow, lambda out: shutil.copytree(seed, out / seed.name))
    out = job_dir(job_id, slow)
    wait_for(
        lambda: any(e["kind"] == "train_started" for e in api.events(job_id)),
        "the slow run to resume and start its step 2",
    )
    cancelled_at = time.monotonic()
    r = api.client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelling", r.text
    job = api.wait(job_id, cpu_worker)
    took = time.monotonic() - cancelled_at
    assert job["status"] == "cancelled", job["error"]
    assert took < 2 + 10, f"cancel took {took:.1f} s"
    (ended,) = [e for e in api.events(job_id) if e["data"].get("to") == "cancelled"]
    assert ended["data"]["stopped"] == "terminated", ended
    assert "did not stop within 2 s" in ended["message"]
    assert [p.name for p in out.glob("step-*")] == [seed.name]
    assert verify_checkpoint(out / seed.name) is not None
    assert child_pids(job_id) == []


def test_a_child_killed_mid_step_is_retried_with_its_cause_and_no_step_is_lost(
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    job_id = api.submit(paced(train_request(total_steps=12, every_steps=2)))
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 3, "step 3")
    (child,) = child_pids(job_id)
    os.kill(child, signal.SIGKILL)
    job = api.wait(job_id, cpu_worker)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    assert steps_recorded(session, job_id) == list(range(1, 13))
    assert assert_checkpoints_match_files(session, job_id) == [2, 4, 6, 8, 10, 12]
    (requeued,) = [e for e in api.events(job_id) if e["data"].get("to") == "queued"]
    assert requeued["data"]["error"] == {
        "code": "killed",
        "message": "trainer process was killed by SIGKILL",
        "attempt": 1,
    }, requeued
    assert "output_tail" in requeued["data"]
    assert cpu_worker.proc.poll() is None


def test_a_child_over_its_memory_limit_fails_with_a_cause_that_says_so(
    single_attempt: None,
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("capped", "gpu.capped", {"DGPO_CHILD_MEMORY_LIMIT_MB": "400"})
    request = train_request(total_steps=1, resources={"gpus": 1, "gpu_type": "capped"})
    job = api.wait(api.submit(request), worker)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "out_of_memory", job["error"]
    assert "exceeded its memory limit of 400 MiB" in job["error"]["message"], job["error"]
    assert job["attempt"] == 1
    assert worker.proc.poll() is None
    worker.stop()


def test_the_slot_returns_to_its_idle_memory_after_every_job(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("lean", "gpu.lean")
    request = train_request(total_steps=1, every_steps=0, resources={"gpus": 1, "gpu_type": "lean"})
    slot = pool_pid(worker)
    idle = rss_kb(slot)
    after = []
    for _ in range(3):
        job = api.wait(api.submit(request), worker)
        assert job["status"] == "succeeded", job["error"]
        after.append(rss_kb(slot))
    assert pool_pid(worker) == slot
    worker.stop()
    assert after[2] <= 1.2 * after[0], after
    assert after[0] <= 1.2 * idle, (idle, after)


def test_a_child_whose_lease_was_taken_over_is_terminated_at_once(
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    job_id = api.submit(train_request(total_steps=200, every_steps=0))
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 1, "the first step")
    assert child_pids(job_id)
    session.execute(  # what a reconciler and a newer claim do to a silent worker's job
        update(Job).where(Job.id == job_id).values(fencing_token=Job.fencing_token + 1)
    )
    session.commit()
    wait_for(lambda: not child_pids(job_id), "the child to be terminated", timeout=15)
    assert cpu_worker.proc.poll() is None


def test_each_child_of_a_two_slot_worker_uses_its_share_of_the_cores(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    """torch in the child runs cores // 2 threads, whatever OMP_NUM_THREADS the worker
    itself inherited (set for the worker process, not for one of its slots)."""
    from config.settings import get_settings

    worker = start_worker("halves", "gpu.halves", {"OMP_NUM_THREADS": "7"}, slots=2)
    request = train_request(total_steps=1, resources={"gpus": 1, "gpu_type": "halves"})
    job_id = api.submit(request)
    job = api.wait(job_id, worker)
    worker.stop()
    assert job["status"] == "succeeded", job["error"]
    log = (Path(get_settings().home) / "jobs" / job_id / "attempt-1.log").read_text()
    assert f"torch uses {max(1, available_cores() // 2)} CPU threads" in log, log[-2000:]


def test_a_trainer_whose_supervisor_is_frozen_fences_itself_before_another_worker_resumes(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    session: Session,
    train_request: Callable[..., dict],
) -> None:
    """SIGSTOP of the slot (a VM pause, a frozen cgroup) stops its lease keeper too: the
    trainer stops itself before the lease expires, so the second worker's attempt is the
    only writer in the job's directory and relays every step the first one reached.

    The job is longer than any machine runs in a lease (a quiet one ran 40 steps in 2 s,
    before the fence could show): the second attempt is cancelled once it is past the
    first one's last checkpoint."""
    lease = {"DGPO_LEASE_S": "10"}  # the fence at 5 s leaves 5 s for a step under way
    frozen = start_worker("frozen", "gpu.freeze", lease)
    resources = {"gpus": 1, "gpu_type": "freeze"}
    request = train_request(total_steps=100_000, every_steps=2, resources=resources)
    job_id = api.submit(request)
    out = job_dir(job_id, request)
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 2, "step 2")
    slot = pool_pid(frozen)
    os.kill(slot, signal.SIGSTOP)
    try:
        expires = datetime.fromisoformat(api.job(job_id)["lease_expires_at"])
        wait_for(lambda: utcnow() > expires, "the frozen slot's lease to expire")
        assert child_pids(job_id) == [], "the trainer outlived its supervisor's lease"
        first_reached = max(int(p.name.removeprefix("step-")) for p in out.glob("step-*"))
        # This reconcile, or one a worker's beat ran first, puts the job back in the queue.
        wait_for(
            lambda: (
                job_id in reconcile(WorkerSettings(worker_dead_after_s=2)).requeued
                or api.job(job_id)["status"] == "queued"
            ),
            "the job back in the queue",
        )
        thawed = start_worker("thawed", "gpu.freeze", lease)
        wait_for(
            lambda: (
                api.job(job_id)["attempt"] == 2
                and (api.job(job_id)["current_step"] or 0) >= first_reached + 4
            ),
            "the second attempt past the first one's last checkpoint",
        )
        r = api.client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
        assert r.status_code == 200, r.text
        job = api.wait(job_id, thawed)
    finally:
        os.kill(slot, signal.SIGCONT)
    assert job["status"] == "cancelled", job["error"]
    assert job["attempt"] == 2
    steps = steps_recorded(session, job_id)
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] >= first_reached + 4
    checkpoints = assert_checkpoints_match_files(session, job_id)
    assert checkpoints and max(checkpoints) <= steps[-1]
    assert "fenced: the supervisor's heartbeat" in (out / "attempt-1.log").read_text()
    assert not list(out.glob(".tmp-step-*"))
    frozen.stop()
    thawed.stop()
