"""Run a multi-GPU train job as one torchrun group under this worker's single lease.

The slot keeps its lease and heartbeat (`LeaseKeeper`) for the whole group; the ranks
never touch the database (`trainer/` must not import `workers/` or `service/`). Rank 0
logs to `<output>/metrics.jsonl` (`trainer.loggers.JsonlLogger`), and this module tails
that file and replays each record through the attempt's fenced `DbReporter`, so metrics
and checkpoints reach Postgres exactly as in a single-process run.

- Process count: `resources.gpus` ranks (one per GPU of the slot; on a CPU-only host the
  ranks use gloo, which is how the tests run it).
- Cancel: the worker touches the group's stop file; rank 0 sees it at the next step
  boundary, the group writes a final checkpoint and exits 0. A group that has not stopped
  `STOP_GRACE_S` later is killed.
- Lease lost: the whole process group is killed at once (SIGTERM, then SIGKILL).
- A rank fails: torchrun stops the others and exits non-zero; the attempt fails with
  torchrun's "Root Cause" block as the error and is re-queued while attempts remain.
"""

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from service.lifecycle import transition
from service.models import JobStatus
from trainer.checkpoints import latest_valid_checkpoint, verify_checkpoint
from trainer.launch import torchrun_command
from trainer.spec import TrainSpec
from workers.leases import Lease, LeaseKeeper, LeaseLost, fenced
from workers.reconciler import republish
from workers.reporting import DbReporter

log = logging.getLogger(__name__)

POLL_S = 0.2
STOP_GRACE_S = 120.0
"""How long a cancelled group may take to write its final checkpoint before it is killed."""
KILL_GRACE_S = 10.0
"""Between SIGTERM and SIGKILL of the group."""
ERROR_CHARS = 4000


class GroupFailed(RuntimeError):
    """The torchrun group exited non-zero; the message is its first rank's failure."""


def run_group(
    lease: Lease, keeper: LeaseKeeper, spec: TrainSpec, output_dir: str, reporter: DbReporter
) -> bool:
    """Run the job's group to its end; True when it stopped early on a cancel."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_file, stop_file = out / "job-spec.yaml", out / "STOP"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    stop_file.unlink(missing_ok=True)
    tail = JsonlTail(out / "metrics.jsonl")
    resumed, _ = latest_valid_checkpoint(out)
    reporter.on_train_start(resumed.info.step if resumed else 0, spec.total_steps)
    args = [str(spec_file), "--output", str(out), "--resume", "--stop-file", str(stop_file)]
    log_path = out / f"attempt-{lease.attempt}.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            torchrun_command(spec.resources.gpus, "trainer.cli", args),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stop_sent: float | None = None
    try:
        while proc.poll() is None:
            tail.replay(reporter)
            if keeper.lost.is_set():
                raise LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} lost its lease")
            if stop_sent is None and reporter.should_stop():
                stop_file.touch()
                stop_sent = time.monotonic()
            if stop_sent is not None and time.monotonic() - stop_sent > STOP_GRACE_S:
                log.warning("job %s: group ignored the stop file; killing it", lease.job_id)
                break
            time.sleep(POLL_S)
    finally:
        stop_group(proc)
    tail.replay(reporter)
    reporter.flush()
    if proc.returncode != 0 and stop_sent is None:
        raise GroupFailed(
            f"torchrun group of {spec.resources.gpus} exited with {proc.returncode}: "
            f"{root_cause(log_path)}"
        )
    return stop_sent is not None


class JsonlTail:
    """New complete lines of rank 0's metrics file since this attempt started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def replay(self, reporter: DbReporter) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode().splitlines():
            record = json.loads(line)
            if record["type"] == "metrics":
                reporter.on_step_end(record["step"], record["metrics"])
            elif record["type"] == "checkpoint":
                checkpoint = verify_checkpoint(record["uri"])
                if checkpoint is not None:  # pruned since (keep_last): nothing to record
                    reporter.on_checkpoint(checkpoint.info)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the whole group (torchrun and every rank), SIGKILL what outlives the grace."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def root_cause(log_path: Path) -> str:
    """torchrun's "Root Cause (first observed failure)" block, else the log's last lines."""
    text = log_path.read_text(errors="replace")
    start = text.rfind("Root Cause (first observed failure)")
    excerpt = text[start:] if start >= 0 else text
    return excerpt[-ERROR_CHARS:].strip()


def requeue_failed_group(lease: Lease, exc: GroupFailed) -> bool:
    """Re-queue the job for another attempt if it has attempts left; True when it did."""
    try:
        with fenced(lease) as (session, job):
            if job.status != JobStatus.RUNNING or job.attempt >= job.max_attempts:
                return False
            transition(
                session,
                job,
                JobStatus.QUEUED,
                f"attempt {lease.attempt} of {job.max_attempts} failed; re-queued",
                error=str(exc),
            )
    except LeaseLost:
        return False  # the caller's own fenced write reports it
    republish(lease.job_id)
    return True
