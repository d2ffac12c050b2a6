"""Preemption with real `dgpo worker` processes, Postgres and Redis: a high-priority job
takes the slot of a running low-priority one, which checkpoints at its next step
boundary, waits in the queue (no attempt counted) and resumes from that checkpoint to the
same final weights, bit for bit, as an uninterrupted run of the same spec; a drain with
`preempt` and a worker's SIGTERM hand the running job back the same way."""

import os
import signal
from collections.abc import Callable

import torch
from safetensors.torch import load_file

from tests.workers.conftest import Api, WorkerProcess, job_dir, paced, wait_for
from workers.reconciler import reconcile

STEPS = 24
"""Long enough that the low-priority run is still mid-way when the preemption lands."""


ONE_THREAD = {"DGPO_CHILD_THREADS": "1"}
"""The workers' trainers use one thread: with two on a host whose cores are busy, a step
waits on the thread that is not running (2.5 s instead of 0.06 at load 5 on 2 cores)."""


def final_tensors(job_id: str, body: dict) -> dict[str, torch.Tensor]:
    """Every tensor of the job's last checkpoint (weights, optimizer and trainer state)."""
    step_dir = job_dir(job_id, body) / f"step-{STEPS:08d}"
    files = sorted(step_dir.rglob("*.safetensors"))
    assert files, f"no safetensors under {step_dir}"
    return {
        f"{path.relative_to(step_dir)}:{name}": tensor
        for path in files
        for name, tensor in load_file(str(path)).items()
    }


def events_of(api: Api, job_id: str, kind: str) -> list[dict]:
    return [e for e in api.events(job_id) if e["kind"] == kind]


def test_a_high_priority_job_preempts_a_running_one_which_resumes_to_the_same_weights(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("preempt", "gpu.preempt", ONE_THREAD)
    resources = {"gpus": 1, "gpu_type": "preempt"}
    body = paced(train_request(total_steps=STEPS, every_steps=STEPS // 2, resources=resources))
    straight = api.submit(body)
    assert api.wait(straight, worker, timeout=300)["status"] == "succeeded"

    low = api.submit(body)
    wait_for(lambda: (api.job(low)["current_step"] or 0) >= 2, "the low-priority job to train")
    urgent = train_request(total_steps=2, every_steps=0, resources=resources)
    high = api.submit({**urgent, "priority": 9})
    assert reconcile().preempting == [low]
    (preempted,) = wait_for(lambda: events_of(api, low, "preempted"), "the preemption", 120)
    latency = preempted["data"]["latency_s"]
    print(f"preemption latency (request -> slot free): {latency:.2f} s")
    assert preempted["data"]["stopped"] == "step_boundary", preempted

    assert api.wait(high, worker)["status"] == "succeeded"
    job = api.wait(low, worker, timeout=300)
    assert (job["status"], job["attempt"], job["error"]) == ("succeeded", 1, None)
    claims = [e for e in api.events(low) if e["data"].get("to") == "running"]
    (high_claim,) = [e for e in api.events(high) if e["data"].get("to") == "running"]
    assert len(claims) == 2 and claims[0]["ts"] < high_claim["ts"] < claims[1]["ts"]
    first, resumed = (e["data"] for e in events_of(api, low, "train_started"))
    assert first["start_step"] == 0 and 0 < resumed["start_step"] < STEPS
    # It resumed from the checkpoint it wrote when asked to stop, not from an older one.
    steps = [
        c["step"] for c in api.client.get(f"/jobs/{low}/checkpoints", headers=api.headers).json()
    ]
    assert resumed["start_step"] in steps

    a, b = final_tensors(straight, body), final_tensors(low, body)
    assert a.keys() == b.keys()
    assert [name for name in a if not torch.equal(a[name], b[name])] == []
    worker.stop()


def start_mid_run(api: Api, body: dict) -> str:
    job_id = api.submit(body)
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 2, f"job {job_id} to train")
    return job_id


def assert_resumed_elsewhere(api: Api, job_id: str, first: str, second: WorkerProcess) -> None:
    """Preempted at a step boundary on `first`, no attempt charged, resumed from that
    checkpoint on `second` to the end."""
    (preempted,) = wait_for(lambda: events_of(api, job_id, "preempted"), "the preemption", 120)
    assert preempted["data"]["stopped"] == "step_boundary", preempted
    job = api.wait(job_id, second, timeout=300)
    assert (job["status"], job["attempt"], job["error"]) == ("succeeded", 1, None)
    claims = [e for e in api.events(job_id) if e["data"].get("to") == "running"]
    assert [c["data"]["owner"] for c in claims] == [first, second.name]
    _, resumed = (e["data"] for e in events_of(api, job_id, "train_started"))
    assert 0 < resumed["start_step"] < STEPS


def test_a_drain_with_preempt_hands_the_running_job_back_with_its_checkpoint(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    resources = {"gpus": 1, "gpu_type": "drainp"}
    body = paced(train_request(total_steps=STEPS, every_steps=STEPS // 2, resources=resources))
    leaving = start_worker("leaving", "gpu.drainp", ONE_THREAD)
    job_id = start_mid_run(api, body)
    drained = api.client.post(
        f"/workers/{leaving.name}/drain", params={"preempt": "true"}, headers=api.headers
    )
    assert drained.status_code == 200, drained.text
    assert (drained.json()["status"], drained.json()["running_job_ids"]) == ("draining", [job_id])
    wait_for(lambda: api.worker(leaving.name).get("status") == "drained", "the worker to drain")
    assert (api.job(job_id)["status"], api.job(job_id)["attempt"]) == ("queued", 0)
    leaving.stop()
    staying = start_worker("staying", "gpu.drainp", ONE_THREAD)
    assert_resumed_elsewhere(api, job_id, leaving.name, staying)
    staying.stop()


def test_sigterm_to_a_worker_preempts_its_job_which_resumes_on_another_worker(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    resources = {"gpus": 1, "gpu_type": "sigterm"}
    body = paced(train_request(total_steps=STEPS, every_steps=STEPS // 2, resources=resources))
    leaving = start_worker("terminated", "gpu.sigterm", ONE_THREAD)
    job_id = start_mid_run(api, body)
    os.kill(leaving.proc.pid, signal.SIGTERM)  # as `docker stop` does: the main process only
    assert leaving.proc.wait(timeout=120) == 0, leaving.output()
    # Started only now: a quiet host runs the job's 24 steps while a worker starts.
    staying = start_worker("survivor", "gpu.sigterm", ONE_THREAD)
    assert_resumed_elsewhere(api, job_id, leaving.name, staying)
    staying.stop()


def test_a_preemption_asked_during_the_last_step_lets_the_job_succeed(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    """The trainer looks for a stop before each step, so one asked during its last step
    finds the run complete: the job succeeds, not queued again with nothing left to do."""
    resources = {"gpus": 1, "gpu_type": "laststep"}
    body = paced(train_request(total_steps=1, every_steps=0, resources=resources))
    worker = start_worker("laststep", "gpu.laststep", ONE_THREAD)
    job_id = api.submit(body)
    # Relayed after the trainer wrote it, and it looks for a stop right after writing it.
    wait_for(lambda: events_of(api, job_id, "train_started"), "the run to start")
    drained = api.client.post(
        f"/workers/{worker.name}/drain", params={"preempt": "true"}, headers=api.headers
    )
    assert drained.json()["running_job_ids"] == [job_id], drained.text
    job = api.wait(job_id, worker, {"succeeded", "failed", "queued"})
    assert (job["status"], job["attempt"], job["error"]) == ("succeeded", 1, None)
    assert events_of(api, job_id, "preempted") == []
    worker.stop()
