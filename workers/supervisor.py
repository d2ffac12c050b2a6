"""One attempt, supervised: the trainer runs in a child process tree, never in the slot.

The slot (a Celery pool process) holds the lease and its heartbeat, starts the child
(`workers.child`), relays its reports into Postgres (`workers.relay`), and stops it:

- cancel: the child is asked to stop at its next step boundary (it writes a final
  checkpoint, then exits 0) by touching `<run dir>/STOP`; if it is still running
  `cancel_grace_s` later, its process group is terminated (SIGTERM, then SIGKILL after
  `kill_grace_s`). An eval has no step boundary and is terminated at once. Checkpoints are
  renamed into place only when complete, so the last one stays valid either way.
- lease lost: another attempt owns the job (and its output directory) now; the group is
  terminated at once, without a final checkpoint.
- child died: `ChildFailed` with a one-line cause (`workers.failures`) and its output tail.
- this process frozen (SIGSTOP, a VM pause): the lease keeper stops refreshing the
  attempt's heartbeat file, and the trainer stops by itself before the lease expires
  (`trainer.reporting.fence`); seen afterwards, that exit is `ChildFenced`, which costs
  the job no attempt.

Nothing of the trainer (torch, the model, an engine, a CUDA context) is ever loaded in
the slot, so its memory is back to its idle size after every attempt.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config import spec_policy
from config.settings import get_settings
from config.worker_settings import WorkerSettings
from store import reports
from store.leases import Lease, LeaseLost
from trainer.reporting.channel import benchmark_result
from trainer.spec import EvalSpec, TrainSpec
from workers import cpus, gang, spare_child
from workers.child import Child
from workers.failures import (
    ChildFailed,
    ChildFenced,
    describe_exit,
    fence_line,
    oom_kills,
)
from workers.leases import LeaseKeeper
from workers.relay import ReportRelay, report_file
from workers.reporting import DbReporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    """How an attempt that did not fail ended."""

    cancelled: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    preempted: bool = False
    """Stopped to give the slot up (`store.preemption`): the job goes back to the queue."""


@dataclass(frozen=True)
class Plan:
    module: str
    args: list[str]
    run_dir: Path
    nproc: int = 1
    stop_file: Path | None = None
    """None: the child has no step boundary to stop at (an eval)."""
    grace_s: float = 0.0
    """How long a cancelled child may take to stop by itself."""
    results_file: Path | None = None
    model: str | None = None
    """The model an eval scores (a checkpoint reference resolved to its URI)."""
    step: int | None = None
    """The checkpoint step an eval scores (None for a model path); its results carry it."""


def job_output_dir(job_id: str, spec: TrainSpec) -> str:
    """Where a train job's checkpoints live: its own directory under the operator's
    storage root (`$DGPO_HOME/jobs/<id>` by default), never one the spec names."""
    return spec_policy.job_output_dir(job_id, spec.checkpoint.output_dir, get_settings())


def run_attempt(lease: Lease, keeper: LeaseKeeper, settings: WorkerSettings) -> Ending:
    """Run one attempt of `lease`'s job in a child to its end."""
    reporter = DbReporter(lease, settings, keeper=keeper)
    plan = _plan(lease, settings)
    relay = ReportRelay(plan.run_dir, lease.attempt, reporter)
    relay.catch_up()
    args = plan.args
    if plan.stop_file is not None:  # a trainer: it fences itself when we stop vouching
        plan.stop_file.unlink(missing_ok=True)
        heartbeat = plan.run_dir / f"attempt-{lease.attempt}.heartbeat"
        keeper.vouch(heartbeat)
        timeout = str(keeper.fence_timeout_s)
        args = [*args, "--heartbeat-file", str(heartbeat), "--heartbeat-timeout", timeout]
    rendezvous = None if lease.member is None else gang.rendezvous(lease, keeper, settings)
    threads = cpus.attempt_threads(
        slots=settings.worker_slots,
        nproc=plan.nproc,
        cores=cpus.available_cores(),
        override=settings.child_threads,
    )
    oom_before = oom_kills()
    log_path = plan.run_dir / f"attempt-{lease.attempt}.log"
    command = [plan.module, *args]
    child = spare_child.start_attempt(
        command,
        log_path,
        nproc=plan.nproc,
        threads=threads,
        settings=settings,
        rendezvous=rendezvous,
    )
    log.info(
        "job %s: attempt %d runs as pid %d with %d CPU threads per process",
        lease.job_id,
        lease.attempt,
        child.pid,
        threads,
    )
    try:
        ending = _watch(child, plan, relay, reporter, keeper, lease, settings)
        if ending is None and not child.started_attempt():
            log.warning(
                "job %s: the spare child %d exited (code %s) before it took attempt %d; "
                "the attempt starts in a fresh child",
                lease.job_id,
                child.pid,
                child.poll(),
                lease.attempt,
            )
            child = spare_child.start_fresh(command, log_path, threads=threads, settings=settings)
            ending = _watch(child, plan, relay, reporter, keeper, lease, settings)
    finally:
        child.terminate(settings.kill_grace_s)  # a no-op unless we are leaving early
    relay.pump()
    if ending is not None:
        return ending
    returncode = child.poll()
    assert returncode is not None
    if returncode != 0:
        oom_after, tail = oom_kills(), child.log_tail()
        oom_killed = oom_before is not None and oom_after not in (None, oom_before)
        limit = settings.child_memory_limit_mb
        if (fenced := fence_line(returncode, tail)) is not None:
            raise ChildFenced(f"trainer stopped itself: {fenced}", tail, returncode)
        cause = describe_exit(returncode, tail, memory_limit_mb=limit, oom_killed=oom_killed)
        raise ChildFailed(cause, tail, returncode)
    if plan.results_file is not None:
        _record_results(lease, plan.results_file, plan.step, f"scored {plan.model}")
    return Ending(False, f"attempt {lease.attempt} finished")


def _watch(
    child: Child,
    plan: Plan,
    relay: ReportRelay,
    reporter: DbReporter,
    keeper: LeaseKeeper,
    lease: Lease,
    settings: WorkerSettings,
) -> Ending | None:
    """Relay and heartbeat until the child exits; an Ending when it was cancelled."""
    grace = plan.grace_s
    asked_at: float | None = None
    while child.poll() is None:
        relay.pump()
        if keeper.lost.is_set():
            child.terminate(0.0)
            raise LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} lost its lease")
        if asked_at is None and reporter.should_stop():
            asked_at = time.monotonic()
            if plan.stop_file is not None:
                plan.stop_file.touch()
        if asked_at is not None and time.monotonic() - asked_at >= grace:
            sent = child.terminate(settings.kill_grace_s)
            if sent is not None:
                return _stopped(
                    reporter,
                    f"after the trainer did not stop within {grace:g} s "
                    f"(its process group was terminated: {sent})",
                    {"stopped": "terminated", "signal": sent, "grace_s": grace},
                )
        time.sleep(settings.report_poll_s)
    if asked_at is not None:
        relay.pump()  # its last reports: did it stop early, or finish first?
        if reporter.stop_reason == "preempt" and child.poll() == 0 and reporter.ran_to_end:
            # Asked during its last step: it looks for a stop only before each step.
            log.info("job %s: finished its last step before the preemption", lease.job_id)
            return None  # a success: nothing is left to resume
        return _stopped(
            reporter,
            "at a step boundary after a final checkpoint",
            {"stopped": "step_boundary", "exit_code": child.poll()},
        )
    return None


def _stopped(reporter: DbReporter, how: str, data: dict[str, Any]) -> Ending:
    """The Ending of a child stopped as asked: cancelled, or preempted."""
    if reporter.stop_reason == "preempt":
        return Ending(False, f"preempted {how}; resumes from its last checkpoint", data, True)
    return Ending(True, f"cancelled {how}", data)


def _plan(lease: Lease, settings: WorkerSettings) -> Plan:
    if lease.kind == "train":
        spec = TrainSpec.model_validate(lease.spec)
        spec_policy.check_on_worker(spec, get_settings())
        out = job_output_dir(lease.job_id, spec)
        run_dir = _run_dir(lease.job_id, lease.member)
        spec_file, stop_file = run_dir / "job-spec.yaml", run_dir / "STOP"
        spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
        reports = report_file(run_dir, lease.attempt)
        args = [str(spec_file), "--output", out, "--resume", "--stop-file", str(stop_file)]
        args += ["--report-file", str(reports)]
        grace = spec.checkpoint.cancel_grace_s
        grace = settings.cancel_grace_s if grace is None else grace
        nproc = spec.resources.gpus_per_node
        return Plan("trainer.cli", args, run_dir, nproc, stop_file, grace)
    if lease.kind == "eval":
        spec = EvalSpec.model_validate(lease.spec)
        spec_policy.check_on_worker(spec, get_settings())
        step, model = _eval_model(spec)
        run_dir = _run_dir(lease.job_id)
        spec_file, results = run_dir / "eval-spec.yaml", run_dir / "results.json"
        spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
        results.unlink(missing_ok=True)
        args = [str(spec_file), "--model", model, "--output", str(results)]
        return Plan(
            "trainer.evaluation.cli", args, run_dir, results_file=results, model=model, step=step
        )
    raise ValueError(f"job {lease.job_id} has unknown kind {lease.kind!r}; expected train or eval")


def _run_dir(job_id: str, member: int | None = None) -> Path:
    """This job's local files: its spec, reports, stop file and logs of every attempt
    (beside its checkpoints unless the spec put those elsewhere); a gang member's in a
    directory of its own, since the members may share one file system."""
    run_dir = Path(get_settings().home) / "jobs" / job_id
    if member is not None:
        run_dir /= f"member-{member}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _eval_model(spec: EvalSpec) -> tuple[int | None, str]:
    """(checkpoint step or None, the model path or URI) an eval scores."""
    if spec.model.checkpoint is None:
        assert spec.model.path is not None
        return None, spec.model.path
    ref = spec.model.checkpoint
    found = reports.find_checkpoint(ref.job_id, None if ref.step == "latest" else ref.step)
    if found is None:
        raise LookupError(
            f"train job {ref.job_id} has no checkpoint at step {ref.step}; "
            "list them with GET /jobs/{id}/checkpoints"
        )
    return found


def _record_results(lease: Lease, results_file: Path, step: int | None, message: str) -> None:
    results = [benchmark_result(r) for r in json.loads(results_file.read_text())]
    reports.record_eval(lease, step, results, message)
