"""Dispatch latency (POST /jobs → running) and the cost of metrics reporting.

    python bench/dispatch.py [--jobs 50] [--steps 100]

1. Starts a real `dgpo worker` on a queue of its own, then submits `--jobs` one-step
   tiny train jobs one at a time through the API (in-process ASGI client), each on an
   idle worker, and reports p50/p99 of `started_at - POST time` (the claim) and of the
   `train_started` event's time - POST time (the trainer's first step begins: this adds
   the attempt's child process start-up, imports and model load). Baseline: the floor of
   that path measured in the same run, one Postgres insert+commit plus one Redis
   LPUSH→BRPOP hand-off.
2. Trains the tiny model in-process for `--steps` steps with the trainer side of the
   report channel (`ReportWriter`: one fsynced JSON line per callback) and reports the
   time spent inside its hooks as a fraction of the run, then relays the file into
   Postgres as the supervisor does (`ReportRelay`, fenced writes, off the trainer's
   path) and reports that per step; baseline: the same run with a no-op callback.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from scratch import REDIS_URL, REPO, scratch_service

sys.path.insert(0, str(REPO))

QUEUE_TYPE = f"bench{os.getpid()}"
"""A queue of its own (`gpu.bench<pid>`) so concurrent runs never share messages."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def train_body(model: str, data: str, steps: int, every: int, resources: dict) -> dict:
    return {
        "kind": "train",
        "model": {"path": model},
        "dataset": {"path": data},
        "prompt": {"instruction": "", "use_chat_template": False},
        "algorithm": {"group_size": 2, "reward": "contains"},
        "rollout": {"max_prompt_tokens": 16, "max_response_tokens": 4, "batch_size": 4},
        "optim": {"prompts_per_step": 2, "mini_batch_prompts": 2, "micro_batch_size": 4},
        "total_steps": steps,
        "checkpoint": {"every_steps": every, "keep_last": 2},
        "resources": resources,
    }


def baseline_floor(rounds: int) -> list[float]:
    """One row insert+commit in Postgres plus one Redis push→pop: the least a dispatch costs."""
    import redis
    from sqlalchemy import text

    from store.db import get_engine

    broker = redis.Redis.from_url(REDIS_URL)
    key = f"dgpo-bench-floor-{os.getpid()}"
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        with get_engine().begin() as conn:
            conn.execute(
                text("INSERT INTO job_events (job_id, ts, kind, message, attempt, data) "
                     "SELECT id, now(), 'bench', '', 0, '{}' FROM jobs LIMIT 1")
            )  # fmt: skip
        broker.lpush(key, "x")
        broker.brpop([key], timeout=5)
        times.append(time.perf_counter() - start)
    return times


def wait_registered(name: str, worker: subprocess.Popen) -> None:
    from store.db import get_sessionmaker
    from store.models import Worker

    for _ in range(600):
        assert worker.poll() is None, "the worker exited; run it by hand to see why"
        with get_sessionmaker()() as session:
            if session.get(Worker, name) is not None:
                return
        time.sleep(0.2)
    raise TimeoutError(f"worker {name} did not register within 120 s")


def dispatch_latency(model: str, data: str, jobs: int) -> tuple[list[float], list[float]]:
    """Per job: (claimed - POST, trainer started - POST) in seconds."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from service.app import create_app
    from store.db import get_sessionmaker
    from store.models import TERMINAL_STATUSES, Job, JobEvent
    from store.tokens import create_token

    with get_sessionmaker()() as session:
        token = create_token(session, "bench", "submit")
    headers = {"Authorization": f"Bearer {token}"}
    body = train_body(model, data, 1, 0, {"gpus": 1, "gpu_type": QUEUE_TYPE})
    latencies, starts = [], []
    with TestClient(create_app()) as client, get_sessionmaker()() as session:
        for _ in range(jobs + 1):  # the first warms the API and the worker up, not counted
            posted = time.time()
            r = client.post("/jobs", json=body, headers=headers)
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            while True:  # wait until finished, so the next job meets an idle worker
                session.expire_all()
                job = session.scalar(select(Job).where(Job.id == job_id))
                if job.status in TERMINAL_STATUSES:
                    break
                time.sleep(0.01)
            assert job.status == "succeeded", job.error
            latencies.append(job.started_at.timestamp() - posted)
            started = session.scalar(
                select(JobEvent.ts).where(
                    JobEvent.job_id == job_id, JobEvent.kind == "train_started"
                )
            )
            starts.append(started.timestamp() - posted)
            time.sleep(0.1)  # let the task return and ack: the next job meets an idle worker
    return latencies[1:], starts[1:]


def reporting_cost(model: str, data: str, steps: int) -> tuple[float, float, float]:
    """Mean seconds per step inside the `ReportWriter` hooks (the trainer's cost), median
    step seconds without them, and mean seconds per step of relaying into Postgres."""
    from config.worker_settings import get_worker_settings
    from store.db import get_sessionmaker
    from store.leases import claim
    from store.models import Job
    from trainer.reporting.callbacks import Callback
    from trainer.reporting.channel import ReportWriter
    from trainer.rl.loop import train
    from trainer.spec import TrainSpec
    from workers.relay import ReportRelay, report_file
    from workers.reporting import DbReporter

    class TimedWriter(ReportWriter):
        """A `ReportWriter` that sums the wall time of its writes."""

        seconds = 0.0

        def _write(self, hook: str, **args: object) -> None:
            t = time.perf_counter()
            super()._write(hook, **args)
            self.seconds += time.perf_counter() - t

    class StepTimes(Callback):
        """Sums the loop's own `time/step` metric: step time excluding callbacks."""

        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
            self.seconds.append(metrics["time/step"])

    body = train_body(model, data, steps, 0, {"gpus": 0})
    spec = TrainSpec.model_validate({k: v for k, v in body.items() if k != "kind"})
    tmp = Path(tempfile.mkdtemp(prefix="dgpo_bench_run_"))
    train(spec.model_copy(update={"total_steps": 3}), output_dir=str(tmp / "warm"), resume=False)

    plain = StepTimes()
    train(spec, output_dir=str(tmp / "plain"), callbacks=plain, resume=False)

    with get_sessionmaker()() as session:
        job = Job(kind="train", spec=spec.model_dump(mode="json"), queue="cpu")
        session.add(job)
        session.commit()
        job_id = job.id
    lease = claim(job_id, "bench", 600)
    assert lease is not None
    writer = TimedWriter(report_file(tmp / "reported", lease.attempt))
    train(spec, output_dir=str(tmp / "reported"), callbacks=writer)
    relay = ReportRelay(tmp / "reported", lease.attempt, DbReporter(lease, get_worker_settings()))
    t = time.perf_counter()
    relay.pump()
    relay_s = time.perf_counter() - t
    return writer.seconds / steps, statistics.median(plain.seconds), relay_s / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    with scratch_service() as env:
        measure(args, Path(env["DGPO_HOME"]))


def measure(args: argparse.Namespace, home: Path) -> None:
    """Start a worker on a queue of its own, then time dispatch and reporting."""
    worker = None
    try:
        from trainer.data.tiny import build_tiny_model, write_toy_dataset

        # Under the operator's default data roots ($DGPO_HOME/models, .../datasets).
        model = str(build_tiny_model(Path(home) / "models" / "tiny"))
        data = str(write_toy_dataset(Path(home) / "datasets" / "toy.jsonl"))
        worker = subprocess.Popen(
            [sys.executable, "-m", "dgpo", "worker", "--queues", f"gpu.{QUEUE_TYPE}",
             "--slots", "1", "--name", f"bench-{os.getpid()}@bench", "--loglevel", "WARNING"],
            cwd=REPO,
            stdout=(Path(home) / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

        wait_registered(f"bench-{os.getpid()}@bench", worker)
        dispatch, starts = dispatch_latency(model, data, args.jobs)
        floor = baseline_floor(args.jobs)
        d50, d99, f50 = pct(dispatch, 0.5), pct(dispatch, 0.99), statistics.median(floor)
        print(f"dispatch POST /jobs → running over {args.jobs} jobs (idle worker):")
        print(f"  p50 {d50 * 1000:8.1f} ms   p99 {d99 * 1000:8.1f} ms")
        print(f"  baseline floor (PG insert+commit + Redis push→pop) p50 {f50 * 1000:6.2f} ms")
        print(f"  ratio dispatch p50 / floor p50: {d50 / f50:8.1f}x")
        s50, s99 = pct(starts, 0.5), pct(starts, 0.99)
        print("POST /jobs → trainer started (child start-up, imports, model load):")
        print(f"  p50 {s50 * 1000:8.1f} ms   p99 {s99 * 1000:8.1f} ms")

        hooks, step, relay = reporting_cost(model, data, args.steps)
        print(f"metrics reporting over {args.steps} tiny CPU steps (worst case: tiny steps):")
        print(f"  baseline step time (median, no reporting) {step * 1000:8.2f} ms")
        print(f"  ReportWriter hooks (mean per step)        {hooks * 1000:8.2f} ms")
        print(f"  ratio reporting / step time: {hooks / step:.2%}")
        print(f"  relay into Postgres (supervisor, per step) {relay * 1000:7.2f} ms")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)


if __name__ == "__main__":
    main()
