"""Preemption latency: from the request (the reconciler's decision) to the slot being free.

    python bench/preemption.py [--rounds 3] [--steps 400]

Starts a real `dgpo worker` (one slot advertising one GPU that the CPU stands in for, a
queue of its own) on a scratch Postgres and Redis. Each round trains a tiny
low-priority job until its second step, submits a priority-9 job, runs one reconciler
pass (which preempts the running job) and reads the `preempted` event's `latency_s`:
request → the job back in the queue with its slot free
(stop file seen, step finished, final checkpoint written, trainer exited). It also
reports request → the waiting job claimed on that slot. Baseline, measured in the same
run: a cancel of the same job at the same point (request → `cancelled`, slot free), which
takes the same path without the re-queue. Medians over the rounds; the load is printed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from dispatch import train_body, wait_registered
from scratch import REPO, scratch_service

sys.path.insert(0, str(REPO))

QUEUE_TYPE = f"preempt{os.getpid()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    with scratch_service() as env:
        measure(args, Path(env["DGPO_HOME"]))


def measure(args: argparse.Namespace, home: Path) -> None:
    from trainer.data.tiny import build_tiny_model, write_toy_dataset
    from trainer.devices import CPU_STANDS_IN_ENV

    model = str(build_tiny_model(home / "models" / "tiny"))
    data = str(write_toy_dataset(home / "datasets" / "toy.jsonl"))
    name = f"bench-{os.getpid()}@bench"
    worker = subprocess.Popen(
        [sys.executable, "-m", "dgpo", "worker", "--queues", f"gpu.{QUEUE_TYPE}",
         "--slots", "1", "--name", name, "--loglevel", "WARNING"],
        cwd=REPO,
        env={**os.environ, "DGPO_STOP_POLL_S": "0", "DGPO_WORKER_GPUS": "0",
             CPU_STANDS_IN_ENV: "1"},
        stdout=(home / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_registered(name, worker)
        resources = {"gpus": 1, "gpu_type": QUEUE_TYPE}
        low = train_body(model, data, args.steps, args.steps // 2, resources)
        high = {**train_body(model, data, 1, 0, resources), "priority": 9}
        freed, claimed, cancelled = [], [], []
        for _ in range(args.rounds):
            f, c = preempt_once(low, high)
            freed.append(f)
            claimed.append(c)
            cancelled.append(cancel_once(low))
        p, c, b = (statistics.median(x) for x in (freed, claimed, cancelled))
        print(f"preemption over {args.rounds} rounds, tiny model, load {os.getloadavg()}:")
        print(f"  request → slot free (median)            {p:7.2f} s   {fmt(freed)}")
        print(f"  request → waiting job claimed (median)  {c:7.2f} s   {fmt(claimed)}")
        print(f"  baseline: cancel request → slot free     {b:7.2f} s   {fmt(cancelled)}")
        print(f"  ratio preemption / cancel: {p / b:.2f}")
    finally:
        worker.terminate()
        worker.wait(timeout=120)


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def preempt_once(low: dict, high: dict) -> tuple[float, float]:
    """(request → slot free, request → high claimed) for one preemption; both jobs are
    then cancelled or finished so the next round meets an idle worker."""
    from workers.reconciler import reconcile

    api = Api()
    low_id = api.running(low)
    high_id = api.submit(high)
    report = reconcile()
    assert report.preempting == [low_id], report
    event = api.wait_event(low_id, "preempted")
    requested = datetime.fromisoformat(event["data"]["requested_at"])
    high_job = api.wait(high_id, {"succeeded"})
    api.cancel(low_id)
    api.wait(low_id, {"cancelled", "succeeded"})
    started = datetime.fromisoformat(high_job["started_at"])
    return event["data"]["latency_s"], (started - requested).total_seconds()


def cancel_once(low: dict) -> float:
    """Cancel request → the job `cancelled` (its slot free)."""
    api = Api()
    job_id = api.running(low)
    asked = time.time()
    api.cancel(job_id)
    job = api.wait(job_id, {"cancelled"})
    return datetime.fromisoformat(job["finished_at"]).timestamp() - asked


class Api:
    """The in-process API with an admin token: submit, read, cancel, wait."""

    def __init__(self) -> None:
        from fastapi.testclient import TestClient

        from service.app import create_app
        from store.db import get_sessionmaker
        from store.tokens import create_token

        with get_sessionmaker()() as session:
            token = create_token(session, "bench", "admin")
        self.client = TestClient(create_app())
        self.headers = {"Authorization": f"Bearer {token}"}

    def submit(self, body: dict) -> str:
        r = self.client.post("/jobs", json=body, headers=self.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/jobs/{job_id}", headers=self.headers).json()

    def cancel(self, job_id: str) -> None:
        self.client.post(f"/jobs/{job_id}/cancel", headers=self.headers)

    def running(self, body: dict) -> str:
        """Submit `body` and return once its trainer passed step 2."""
        job_id = self.submit(body)
        self.until(lambda: (self.job(job_id)["current_step"] or 0) >= 2)
        return job_id

    def wait(self, job_id: str, statuses: set[str]) -> dict:
        return self.until(lambda: (j := self.job(job_id))["status"] in statuses and j)

    def wait_event(self, job_id: str, kind: str) -> dict:
        def found() -> dict | None:
            events = self.client.get(f"/jobs/{job_id}/events", headers=self.headers).json()
            return next((e for e in events if e["kind"] == kind), None)

        return self.until(found)

    @staticmethod
    def until(check, timeout: float = 600.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := check():
                return result
            time.sleep(0.05)
        raise TimeoutError("the worker did not get there; see $DGPO_HOME/worker.log")


if __name__ == "__main__":
    main()
