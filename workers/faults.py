"""Infrastructure faults end an attempt without counting it.

A write that keeps failing on a lost database connection (see `retrying`) is not the
job's fault: the job goes back to the queue with its attempt count unchanged, and the
next attempt resumes from its latest checkpoint.
"""

import logging

from store.db import is_transient, retrying
from store.lifecycle import transition
from store.models import JobStatus
from workers.leases import Lease, LeaseLost, fenced
from workers.reconciler import republish

log = logging.getLogger(__name__)


def requeue_after_fault(lease: Lease, exc: BaseException) -> bool:
    """Re-queue the job, uncounted, if `exc` is a transient database error; True if it
    is handled (re-queued, or another attempt already owns the job)."""
    if not is_transient(exc):
        return False

    def requeue() -> bool:
        with fenced(lease) as (session, job):
            if job.status != JobStatus.RUNNING:  # cancelling: let the caller end it
                return False
            transition(
                session,
                job,
                JobStatus.QUEUED,
                f"attempt {lease.attempt} interrupted by a lost database connection; "
                "re-queued without counting it",
                data={"fault": f"{type(exc).__name__}: {exc}"[:2000]},
            )
            job.attempt -= 1
            return True

    try:
        if not retrying(requeue, f"job {lease.job_id}: re-queue after a fault"):
            return False
    except LeaseLost:
        return True
    except Exception:
        log.exception("job %s: could not re-queue after a database fault", lease.job_id)
        return False
    republish(lease.job_id)
    return True
