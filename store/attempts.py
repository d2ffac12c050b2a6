"""How an attempt ends: its job's status changes, each one fenced by the attempt's lease.

Every function raises `LeaseLost` when another attempt owns the job by now; that newer
attempt decides how the job ends.
"""

from typing import Any

from store.leases import Lease, fenced
from store.lifecycle import transition
from store.models import JobStatus


def finish(lease: Lease, cancelled: bool, message: str, data: dict[str, Any]) -> None:
    """The attempt ran to its end: the job succeeded, or is cancelled as it was asked."""
    with fenced(lease) as (session, job):
        status = JobStatus.CANCELLED if cancelled else JobStatus.SUCCEEDED
        transition(session, job, status, message, data=data)


def fail(lease: Lease, error: str, data: dict[str, Any], *, crashed: bool) -> bool:
    """The attempt failed: a crashed child's job is re-queued while attempts remain, a
    job being cancelled is cancelled, any other fails. True if it was re-queued."""
    with fenced(lease) as (session, job):
        requeue = crashed and job.status == JobStatus.RUNNING and job.attempt < job.max_attempts
        if requeue:
            message = f"attempt {lease.attempt} of {job.max_attempts} failed; re-queued"
            transition(session, job, JobStatus.QUEUED, message, error=error, data=data)
        elif job.status == JobStatus.CANCELLING:
            transition(session, job, JobStatus.CANCELLED, f"cancelled; {error}", data=data)
        else:
            transition(session, job, JobStatus.FAILED, error, error=error, data=data)
    return requeue


def requeue_uncounted(lease: Lease, message: str, data: dict[str, Any]) -> bool:
    """Put a running job back in the queue as if this attempt never started (a fault of
    the infrastructure, not of the job); False if it is being cancelled instead."""
    with fenced(lease) as (session, job):
        if job.status != JobStatus.RUNNING:
            return False
        transition(session, job, JobStatus.QUEUED, message, data=data)
        job.attempt -= 1
        return True
