"""The Celery tasks: `dgpo.run_job` (claim, supervise one attempt, finish) and `dgpo.reconcile`.

The task body only says "run job X"; whether it runs is the lease's decision, so a
duplicate or redelivered message returns at once. The attempt itself runs in a child
process tree (`workers.supervisor`): a child that dies is re-queued with its cause while
attempts remain, then the job fails; the task always returns normally so the worker
process keeps serving.
"""

import logging
import os
import time
import traceback
from typing import Any

from celery.exceptions import Reject

from config.logs import job_log_context
from config.settings import get_settings
from config.worker_settings import get_worker_settings
from store import attempts, dispatch
from store.db import is_transient, retrying
from store.leases import Lease, LeaseLost, place
from store.lifecycle import JobError
from store.placement import Slot
from workers import gang, registry, studies
from workers.celery_app import app
from workers.failure_codes import classify
from workers.failures import ChildFailed
from workers.faults import requeue_after_fault
from workers.leases import LeaseKeeper
from workers.reconciler import reconcile, republish
from workers.routing import RECONCILE_TASK
from workers.schedules import FIRE_SCHEDULES_TASK, settle_job, tick
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
    """Run one attempt of the job this slot should run next, prompted by `job_id`'s run
    message (`store.placement`); returns what happened."""
    settings = get_worker_settings()
    lease, placed = place(job_id, Slot(owner, registry.slot_gpus()), settings.lease_s)
    if placed.hand_back:
        hand_back(job_id, placed.reason, 0.0 if lease else settings.handback_delay_s)
    if lease is None:
        log.info("job %s: not claimed here: %s", job_id, placed.reason)
        return "handed_back" if placed.hand_back else "skipped"
    keeper = (
        LeaseKeeper(lease, settings.lease_s, settings.lease_renew_s)
        if lease.member is None
        else gang.GangKeeper(lease, settings, _fail)
    )
    with job_log_context(lease.job_id, lease.attempt), keeper:
        try:
            ending = run_attempt(lease, keeper, settings)
            if ending.preempted:
                _requeue_preempted(lease, ending)
                return "preempted"
            retrying(lambda: _finish(lease, ending), f"job {lease.job_id}: finish")
        except LeaseLost as exc:
            log.warning("%s; the newer attempt owns the job", exc)
            return "lease_lost"
        except Exception as exc:
            log.exception("job %s failed", lease.job_id)
            if lease.member is not None:  # a gang's: maybe another member's loss
                blamed = gang.blame(lease, exc, keeper, settings)
                if blamed is None:
                    return "lease_lost"
                exc = blamed
            _fail(lease, exc)
            return "failed"
    return "cancelled" if ending.cancelled else "succeeded"


def _finish(lease: Lease, ending: Ending) -> None:
    attempts.finish(lease, ending.cancelled, ending.message, ending.data)
    if lease.kind == "eval":
        settle_job(lease.job_id)  # a schedule's run: compare with its baseline (never raises)
    elif not ending.cancelled:
        studies.submit_eval(lease.job_id)  # a study member: evaluate it (never raises)


def _requeue_preempted(lease: Lease, ending: Ending) -> None:
    """Back to the queue with its slot free; its message goes with it."""
    message = f"attempt {lease.attempt} {ending.message}"
    requeued = retrying(
        lambda: attempts.preempted(lease, message, ending.data), f"job {lease.job_id}: preempted"
    )
    if requeued:
        republish(lease.job_id)


def _fail(lease: Lease, exc: BaseException) -> None:
    """The attempt failed: classify it (`workers.failure_codes`); a transient failure is
    re-queued with back-off while attempts remain, anything else fails the job (an
    infrastructure fault re-queues it without counting the attempt)."""
    if requeue_after_fault(lease, exc):
        return
    code = classify(exc)
    if isinstance(exc, ChildFailed):
        message, data = exc.cause, {"exit_code": exc.returncode, "output_tail": exc.tail}
    else:
        message = f"{type(exc).__name__}: {exc}"
        data = {"traceback": "".join(traceback.format_exception(exc)[-5:])}
    policy = get_settings().retry
    retry_in = None if code in policy.fail_fast else policy.backoff(lease.attempt)
    try:
        error = JobError(code, message, lease.attempt)
        requeued = attempts.fail(lease, error, data, retry_in=retry_in)
    except LeaseLost:
        log.warning(
            "job %s: failed after losing its lease; the newer attempt decides", lease.job_id
        )
        return
    if requeued and not retry_in:
        republish(lease.job_id)  # no back-off: due now
    elif requeued:
        reconcile_when_due(lease.job_id, retry_in)
    elif lease.kind == "eval":
        settle_job(lease.job_id)


def reconcile_when_due(job_id: str, delay_s: float) -> None:
    """Ask `dgpo beat` for a reconciler pass `delay_s` from now, when the job's back-off
    ends, so that it is sent then rather than at the next periodic pass (up to
    `reconcile_every_s` later). Only beat consumes that queue: the pass runs there."""
    try:
        reconcile_task.apply_async(countdown=delay_s)
    except Exception as exc:  # any transport error: the periodic pass still sends it
        log.warning("job %s: no reconciler pass scheduled at its back-off's end: %s", job_id, exc)


def hand_back(job_id: str, why: str, pause_s: float) -> None:
    """Send the run message of `job_id`, which this slot did not run, back to its queue,
    then keep this slot busy for `pause_s` so that another slot takes it rather than this
    one again at once (sent first: a slot killed in the pause loses nothing)."""
    log.info("job %s: handing its message back (%s)", job_id, why)
    if not dispatch.hand_back(job_id):
        log.warning("job %s: hand-back refused by the broker; the reconciler re-sends it", job_id)
    time.sleep(pause_s)
