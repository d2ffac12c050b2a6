"""The Celery tasks: `dgpo.run_job` (claim, run, finish) and `dgpo.reconcile`.

The task body only says "run job X"; whether it runs is the lease's decision, so a
duplicate or redelivered message returns at once. Any exception from the trainer ends
the job `failed` with the error on the row and in its events; the task itself returns
normally so the worker process keeps serving.
"""

import logging
import os
import traceback
from pathlib import Path
from typing import Any

from celery.exceptions import Reject

from service.core.config import get_settings
from service.core.db import get_sessionmaker, is_transient, retrying
from service.lifecycle import transition
from service.logs import job_log_context
from service.models import JobStatus
from trainer.spec import EvalSpec, TrainSpec
from workers.celery_app import app
from workers.faults import requeue_after_fault
from workers.leases import Lease, LeaseKeeper, LeaseLost, claim, fenced
from workers.reconciler import reconcile
from workers.reporting import DbReporter, latest_checkpoint_uri, record_eval
from workers.routing import RECONCILE_TASK
from workers.schedules import FIRE_SCHEDULES_TASK, settle_job, tick
from workers.settings import get_worker_settings
from workers.torchrun import GroupFailed, requeue_failed_group, run_group

log = logging.getLogger(__name__)

RUN_JOB_TASK = "dgpo.run_job"


@app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)
def run_job(self: Any, job_id: str) -> str:
    try:
        return execute(job_id, owner=self.request.hostname or f"pid{os.getpid()}")
    except Exception as exc:
        if is_transient(exc):  # the database stayed away: redeliver, never ack and lose it
            raise Reject(exc, requeue=True) from exc
        raise


@app.task(name=RECONCILE_TASK, ignore_result=True)
def reconcile_task() -> None:
    reconcile()


@app.task(name=FIRE_SCHEDULES_TASK, ignore_result=True)
def fire_schedules_task() -> None:
    tick()


def execute(job_id: str, owner: str) -> str:
    """Run one attempt of `job_id` if this worker wins the claim; returns what happened."""
    settings = get_worker_settings()
    lease = claim(job_id, owner, settings.lease_s)
    if lease is None:
        log.info("job %s: not claimable (already leased, finished or cancelled)", job_id)
        return "skipped"
    with (
        job_log_context(job_id, lease.attempt),
        LeaseKeeper(lease, settings.lease_s, settings.lease_renew_s) as keeper,
    ):
        try:
            stopped = _run(lease, keeper)
            retrying(lambda: _finish(lease, stopped), f"job {job_id}: finish")
        except LeaseLost as exc:
            log.warning("%s; the newer attempt owns the job", exc)
            return "lease_lost"
        except Exception as exc:
            log.exception("job %s failed", job_id)
            _fail(lease, exc)
            return "failed"
    return "cancelled" if stopped else "succeeded"


def job_output_dir(job_id: str, spec: TrainSpec) -> str:
    """Where a train job's checkpoints live: the spec's choice, else `$DGPO_HOME/jobs/<id>`."""
    return spec.checkpoint.output_dir or str(Path(get_settings().home) / "jobs" / job_id)


def _run(lease: Lease, keeper: LeaseKeeper) -> bool:
    """Run the trainer or the evaluator; True when it stopped early on a cancel."""
    if lease.kind == "train":
        from trainer.loop import train

        spec = TrainSpec.model_validate(lease.spec)
        reporter = DbReporter(
            lease,
            get_worker_settings(),
            keeper=keeper,
            checkpoint_every=spec.checkpoint.every_steps,
        )
        output_dir = job_output_dir(lease.job_id, spec)
        if spec.resources.gpus > 1:  # one torchrun rank per GPU: see workers.torchrun
            return run_group(lease, keeper, spec, output_dir, reporter)
        result = train(spec, output_dir=output_dir, callbacks=reporter, resume=True)
        reporter.flush()
        return result.stopped
    if lease.kind == "eval":
        _run_eval(lease, EvalSpec.model_validate(lease.spec))
        return False
    raise ValueError(f"job {lease.job_id} has unknown kind {lease.kind!r}; expected train or eval")


def _run_eval(lease: Lease, spec: EvalSpec) -> None:
    from trainer.evaluation.runner import run_eval

    model_path = spec.model.path
    if spec.model.checkpoint is not None:
        ref = spec.model.checkpoint
        step = None if ref.step == "latest" else ref.step
        with get_sessionmaker()() as session:
            model_path = latest_checkpoint_uri(session, ref.job_id, step)
        if model_path is None:
            raise LookupError(
                f"train job {ref.job_id} has no checkpoint at step {ref.step}; "
                "list them with GET /jobs/{id}/checkpoints"
            )
    results = run_eval(spec, model_path)
    with fenced(lease) as (session, job):
        record_eval(session, job, None, results, f"scored {model_path}")


def _finish(lease: Lease, stopped: bool) -> None:
    with fenced(lease) as (session, job):
        if stopped:
            transition(session, job, JobStatus.CANCELLED, "cancelled at a step boundary")
        else:
            transition(session, job, JobStatus.SUCCEEDED, f"attempt {lease.attempt} finished")
    if lease.kind == "eval":
        settle_job(lease.job_id)  # a schedule's run: compare with its baseline (never raises)


def _fail(lease: Lease, exc: BaseException) -> None:
    if isinstance(exc, GroupFailed) and requeue_failed_group(lease, exc):
        return
    if requeue_after_fault(lease, exc):
        return
    error = f"{type(exc).__name__}: {exc}"
    tail = "".join(traceback.format_exception(exc)[-5:])
    try:
        with fenced(lease) as (session, job):
            transition(session, job, JobStatus.FAILED, error, error=error, data={"traceback": tail})
    except LeaseLost:
        log.warning(
            "job %s: failed after losing its lease; the newer attempt decides", lease.job_id
        )
    if lease.kind == "eval":
        settle_job(lease.job_id)
