"""Dispatch latency (POST /jobs → running → trainer started) and the cost of metrics reporting.

    python bench/dispatch.py [--jobs 20] [--steps 100]

1. Starts two real `dgpo worker`s (one slot each, CPU standing in for one GPU), each on
   a queue of its own: the baseline with `DGPO_SPARE_CHILD=false` (every attempt starts a
   fresh child process, which imports torch, transformers and the trainer) and one with
   the slot's spare child (`workers.spare_child`). It submits `--jobs` one-step tiny
   train jobs to each through the API (in-process ASGI client), alternating, one at a
   time, each on a warm worker (idle, its spare ready, the model read once before), and
   reports p50/p99 of each stage, measured from the POST: the claim (`started_at`), the
   spare taking the attempt (its log line), the trainer started (the `train_started`
   event: model, data and engine loaded, the first step begins) and the first step done
   (its metrics row). Baseline: the same stages on the fresh-child worker, and the floor
   of the claim, one Postgres insert+commit plus one Redis LPUSH→BRPOP hand-off.
2. Trains the tiny model in-process for `--steps` steps with the trainer side of the
   report channel (`ReportWriter`: one fsynced JSON line per callback) and reports the
   time spent inside its hooks as a fraction of the run, then relays the file into
   Postgres as the supervisor does (`ReportRelay`, fenced writes, off the trainer's
   path) and reports that per step; baseline: the same run with a no-op callback.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from scratch import REDIS_URL, REPO, scratch_service

sys.path.insert(0, str(REPO))

CONFIGS = {"fresh child": "false", "spare child": "true"}
"""Worker configurations compared (`DGPO_SPARE_CHILD`), the baseline first."""
STAGES = ("claimed", "spare took it", "trainer started", "first step done")
TOOK = re.compile(r"pre-started child \d+ took the attempt at (\d+\.\d+) .*imports took (\S+) s")


def queue_type(config: str) -> str:
    """A queue of its own per configuration (`gpu.bench<pid>-<n>`): concurrent runs never
    share messages."""
    return f"bench{os.getpid()}-{list(CONFIGS).index(config)}"


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


def wait_spares_ready(home: Path) -> None:
    """Until every slot's spare child has done its imports (a warm worker)."""
    from trainer.supervised_spare import READY

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        logs = list((home / "spares").glob("*.log"))
        if all(READY in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.1)
    raise TimeoutError("the spare children did not finish their imports within 300 s")


def dispatch_latency(
    model: str, data: str, jobs: int, home: Path
) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """Per configuration and stage, seconds from POST for each job; and the spares'
    import times (what a fresh child spends before it reads the model)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from service.app import create_app
    from store.db import get_sessionmaker
    from store.models import TERMINAL_STATUSES, Job, JobEvent, Metric
    from store.tokens import create_token

    with get_sessionmaker()() as session:
        token = create_token(session, "bench", "submit")
    headers = {"Authorization": f"Bearer {token}"}
    times: dict[str, dict[str, list[float]]] = {c: {s: [] for s in STAGES} for c in CONFIGS}
    imports: list[float] = []
    with TestClient(create_app()) as client, get_sessionmaker()() as session:
        for i in range(jobs + 1):  # the first warms the API and the workers up, not counted
            for config in CONFIGS:
                resources = {"gpus": 1, "gpu_type": queue_type(config)}
                body = train_body(model, data, 1, 0, resources)
                wait_spares_ready(home)
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
                started = session.scalar(
                    select(JobEvent.ts).where(
                        JobEvent.job_id == job_id, JobEvent.kind == "train_started"
                    )
                )
                stepped = session.scalar(
                    select(Metric.ts).where(Metric.job_id == job_id, Metric.step == 1)
                )
                log = (home / "jobs" / job_id / "attempt-1.log").read_text(errors="replace")
                took = TOOK.search(log)
                time.sleep(0.1)  # let the task return and ack: the next job meets an idle worker
                if i == 0:
                    continue
                stages = times[config]
                stages["claimed"].append(job.started_at.timestamp() - posted)
                if took:
                    stages["spare took it"].append(float(took.group(1)) - posted)
                    imports.append(float(took.group(2)))
                stages["trainer started"].append(started.timestamp() - posted)
                stages["first step done"].append(stepped.timestamp() - posted)
    return times, imports


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
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    with scratch_service() as env:
        measure(args, Path(env["DGPO_HOME"]))


def measure(args: argparse.Namespace, home: Path) -> None:
    """Start a worker per configuration, then time dispatch and reporting."""
    from trainer.data.tiny import build_tiny_model, write_toy_dataset
    from trainer.devices import CPU_STANDS_IN_ENV

    workers = []
    try:
        # Under the operator's default data roots ($DGPO_HOME/models, .../datasets).
        model = str(build_tiny_model(Path(home) / "models" / "tiny"))
        data = str(write_toy_dataset(Path(home) / "datasets" / "toy.jsonl"))
        for config, spare in CONFIGS.items():
            name = f"bench-{os.getpid()}-{list(CONFIGS).index(config)}@bench"
            queues = f"gpu.{queue_type(config)}"
            env = {"DGPO_SPARE_CHILD": spare, "DGPO_WORKER_GPUS": "0", CPU_STANDS_IN_ENV: "1"}
            argv = ["worker", "--queues", queues, "--slots", "1", "--name", name]
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dgpo", *argv, "--loglevel", "WARNING"],
                    cwd=REPO,
                    env={**os.environ, **env},
                    stdout=(Path(home) / f"{name}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            wait_registered(name, workers[-1])

        print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
        times, imports = dispatch_latency(model, data, args.jobs, home)
        floor = baseline_floor(args.jobs)
        print(f"load average after:  {Path('/proc/loadavg').read_text().strip()}")
        print(f"POST /jobs → each stage over {args.jobs} one-step tiny jobs per worker")
        print("(warm worker: idle, its spare ready, the model read once; alternating):")
        header = "".join(f"{c + ' p50':>18}{'p99':>9}" for c in CONFIGS)
        print(f"  {'stage':<18}{header}")
        for stage in STAGES:
            cells = ""
            for config in CONFIGS:
                seen = times[config][stage]
                cells += f"{pct(seen, 0.5):17.3f}s{pct(seen, 0.99):8.3f}s" if seen else f"{'-':>27}"
            print(f"  {stage:<18}{cells}")
        base, spare = (times[c]["trainer started"] for c in CONFIGS)
        print(
            f"  ratio trainer started p50, fresh / spare: {pct(base, 0.5) / pct(spare, 0.5):.1f}x"
        )
        if imports:
            wait = statistics.median(imports)
            print(f"  the spares' imports (what a fresh child waits for): median {wait:.2f} s")
        claimed = times["spare child"]["claimed"]
        f50 = statistics.median(floor)
        print(f"  claim floor (PG insert+commit + Redis push→pop) p50 {f50 * 1000:6.2f} ms;")
        print(f"  ratio claim p50 / floor p50: {pct(claimed, 0.5) / f50:8.1f}x")

        hooks, step, relay = reporting_cost(model, data, args.steps)
        print(f"metrics reporting over {args.steps} tiny CPU steps (worst case: tiny steps):")
        print(f"  baseline step time (median, no reporting) {step * 1000:8.2f} ms")
        print(f"  ReportWriter hooks (mean per step)        {hooks * 1000:8.2f} ms")
        print(f"  ratio reporting / step time: {hooks / step:.2%}")
        print(f"  relay into Postgres (supervisor, per step) {relay * 1000:7.2f} ms")
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)


if __name__ == "__main__":
    main()
