"""Infrastructure faults end an attempt without counting it.

A write that keeps failing on a lost database connection (see `retrying`) is not the
job's fault: the job goes back to the queue with its attempt count unchanged, and the
next attempt resumes from its latest checkpoint.
"""

import logging

from store import attempts
from store.db import is_transient, retrying
from store.leases import Lease, LeaseLost
from workers.failures import ChildFenced
from workers.reconciler import republish

log = logging.getLogger(__name__)


def requeue_after_fault(lease: Lease, exc: BaseException) -> bool:
    """Re-queue the job, uncounted, if `exc` is a transient database error or a trainer
    that fenced itself; True if it is handled (re-queued, or another attempt owns the job)."""
    if isinstance(exc, ChildFenced):
        why = "its trainer fenced itself (the supervisor's heartbeat went stale)"
    elif is_transient(exc):
        why = "a lost database connection"
    else:
        return False

    def requeue() -> bool:  # False while cancelling: the caller ends it
        return attempts.requeue_uncounted(
            lease,
            f"attempt {lease.attempt} interrupted by {why}; re-queued without counting it",
            {"fault": f"{type(exc).__name__}: {exc}"[:2000]},
        )

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
