"""The Celery tasks: `dgpo.run_job` (claim, supervise one attempt, finish) and `dgpo.reconcile`.

The task body only says "run job X"; whether it runs is the lease's decision, so a
duplicate or redelivered message returns at once. The attempt itself runs in a child
process tree (`workers.supervisor`): a child that dies is re-queued with its cause while
attempts remain, then the job fails; the task always returns normally so the worker
process keeps serving.
"""

import logging
import os
import traceback
from typing import Any

from celery.exceptions import Reject

from config.logs import job_log_context
from store import attempts
from store.db import is_transient, retrying
from store.leases import Lease, LeaseLost, claim
from workers.celery_app import app
from workers.failures import ChildFailed
from workers.faults import requeue_after_fault
from workers.leases import LeaseKeeper
from workers.reconciler import reconcile, republish
from workers.routing import RECONCILE_TASK
from workers.schedules import FIRE_SCHEDULES_TASK, settle_job, tick
from workers.settings import get_worker_settings
from workers.supervisor import Ending, run_attempt

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
            ending = run_attempt(lease, keeper, settings)
            retrying(lambda: _finish(lease, ending), f"job {job_id}: finish")
        except LeaseLost as exc:
            log.warning("%s; the newer attempt owns the job", exc)
            return "lease_lost"
        except Exception as exc:
            log.exception("job %s failed", job_id)
            _fail(lease, exc)
            return "failed"
    return "cancelled" if ending.cancelled else "succeeded"


def _finish(lease: Lease, ending: Ending) -> None:
    attempts.finish(lease, ending.cancelled, ending.message, ending.data)
    if lease.kind == "eval":
        settle_job(lease.job_id)  # a schedule's run: compare with its baseline (never raises)


def _fail(lease: Lease, exc: BaseException) -> None:
    """The attempt failed: re-queue a crashed child while attempts remain, else fail
    (an infrastructure fault re-queues it without counting the attempt)."""
    if requeue_after_fault(lease, exc):
        return
    if isinstance(exc, ChildFailed):
        error, data = exc.cause, {"exit_code": exc.returncode, "output_tail": exc.tail}
    else:
        error = f"{type(exc).__name__}: {exc}"
        data = {"traceback": "".join(traceback.format_exception(exc)[-5:])}
    try:
        crashed = isinstance(exc, ChildFailed) and exc.retryable
        requeued = attempts.fail(lease, error, data, crashed=crashed)
    except LeaseLost:
        log.warning(
            "job %s: failed after losing its lease; the newer attempt decides", lease.job_id
        )
        return
    if requeued:
        republish(lease.job_id)
    elif lease.kind == "eval":
        settle_job(lease.job_id)
