"""The Celery tasks: `dgpo.run_job` (claim, run, finish) and `dgpo.reconcile`.

The task body only says "run job X"; whether it runs is the lease's decision, so a
duplicate or redelivered message returns at once. Any exception from the trainer ends
the job `failed` with the error on the row and in its events; the task itself returns
normally so the worker process keeps serving.
"""

import logging
import os
import traceback
from typing import Any

from service import spec_policy
from service.core.config import get_settings
from service.core.db import get_sessionmaker
from service.lifecycle import transition
from service.logs import job_log_context
from service.models import JobStatus
from trainer.spec import EvalSpec, TrainSpec
from workers.celery_app import app
from workers.leases import Lease, LeaseKeeper, LeaseLost, claim, fenced
from workers.reconciler import reconcile
from workers.reporting import DbReporter, find_checkpoint, record_eval
from workers.routing import RECONCILE_TASK
from workers.schedules import FIRE_SCHEDULES_TASK, settle_job, tick
from workers.settings import get_worker_settings
from workers.torchrun import GroupFailed, requeue_failed_group, run_group

log = logging.getLogger(__name__)

RUN_JOB_TASK = "dgpo.run_job"


@app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)
def run_job(self: Any, job_id: str) -> str:
    return execute(job_id, owner=self.request.hostname or f"pid{os.getpid()}")


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
            _finish(lease, stopped)
        except LeaseLost as exc:
            log.warning("%s; the newer attempt owns the job", exc)
            return "lease_lost"
        except Exception as exc:
            log.exception("job %s failed", job_id)
            _fail(lease, exc)
            return "failed"
    return "cancelled" if stopped else "succeeded"


def job_output_dir(job_id: str, spec: TrainSpec) -> str:
    """Where a train job's checkpoints live: its own directory under the operator's
    storage root (`$DGPO_HOME/jobs/<id>` by default), never one the spec names."""
    return spec_policy.job_output_dir(job_id, spec.checkpoint.output_dir, get_settings())


def _run(lease: Lease, keeper: LeaseKeeper) -> bool:
    """Run the trainer or the evaluator; True when it stopped early on a cancel."""
    if lease.kind == "train":
        from trainer.loop import train

        spec = TrainSpec.model_validate(lease.spec)
        spec_policy.check_on_worker(spec, get_settings())
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
        eval_spec = EvalSpec.model_validate(lease.spec)
        spec_policy.check_on_worker(eval_spec, get_settings())
        _run_eval(lease, eval_spec)
        return False
    raise ValueError(f"job {lease.job_id} has unknown kind {lease.kind!r}; expected train or eval")


def _run_eval(lease: Lease, spec: EvalSpec) -> None:
    from trainer.evaluation.runner import run_eval

    model_path, step = spec.model.path, None
    if spec.model.checkpoint is not None:
        ref = spec.model.checkpoint
        with get_sessionmaker()() as session:
            found = find_checkpoint(session, ref.job_id, None if ref.step == "latest" else ref.step)
        if found is None:
            raise LookupError(
                f"train job {ref.job_id} has no checkpoint at step {ref.step}; "
                "list them with GET /jobs/{id}/checkpoints"
            )
        step, model_path = found  # results carry the step they scored
    assert model_path is not None  # EvalModel holds exactly one of path and checkpoint
    results = run_eval(spec, model_path)
    with fenced(lease) as (session, job):
        record_eval(session, job, step, results, f"scored {model_path}")


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
