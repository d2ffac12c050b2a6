"""How an attempt ends: its job's status changes, each one fenced by the attempt's lease.

Every function raises `LeaseLost` when another attempt owns the job by now; that newer
attempt decides how the job ends.
"""

from datetime import timedelta
from typing import Any

from store import gangs
from store.leases import Lease, fenced
from store.lifecycle import JobError, append_event, transition
from store.models import JobStatus, utcnow
from store.preemption import PREEMPTED


def finish(lease: Lease, cancelled: bool, message: str, data: dict[str, Any]) -> None:
    """The attempt ran to its end: the job succeeded, or is cancelled as it was asked. A
    gang's ends with its last member (whichever hosts rank 0 has relayed all by then)."""
    with fenced(lease) as (session, job):
        if lease.member is not None and not gangs.finish_member(session, job, lease.member):
            return
        status = JobStatus.CANCELLED if cancelled else JobStatus.SUCCEEDED
        transition(session, job, status, message, data=data)


def fail(lease: Lease, error: JobError, data: dict[str, Any], *, retry_in: float | None) -> bool:
    """The attempt failed with `error`: with `retry_in` seconds of back-off (None: a
    failure that fails the same way again) its job is re-queued while attempts remain, due
    after the back-off and preferring another worker; a job being cancelled is cancelled;
    any other fails. True if it was re-queued."""
    payload = {**data, "error": error.as_dict()}
    with fenced(lease) as (session, job):
        left = job.attempt < job.max_attempts
        if job.status == JobStatus.CANCELLING:
            transition(session, job, JobStatus.CANCELLED, f"cancelled; {error.message}", data=data)
            return False
        if retry_in is None or not left:
            why = "not retried: it fails the same way again" if left else "no attempts left"
            message = f"attempt {lease.attempt} of {job.max_attempts} failed ({error.code}); {why}"
            transition(session, job, JobStatus.FAILED, message, error=error, data=payload)
            return False
        job.not_before = utcnow() + timedelta(seconds=retry_in)
        job.last_failed_on = lease.owner
        message = (
            f"attempt {lease.attempt} of {job.max_attempts} failed ({error.code}: "
            f"{error.message}); retrying after {retry_in:g} s of back-off"
        )
        payload |= {"retry_in_s": retry_in, "not_before": job.not_before.isoformat()}
        transition(session, job, JobStatus.QUEUED, message, error=error, data=payload)
        return True


def preempted(lease: Lease, message: str, data: dict[str, Any]) -> bool:
    """The attempt gave its slot up as asked (`store.preemption`): the job is queued again
    with a `preempted` event, the attempt not counted, and resumes from its checkpoint;
    a job being cancelled is cancelled. True if it was re-queued. A gang's is requeued by
    its last member, as `finish` ends it."""
    with fenced(lease) as (session, job):
        if lease.member is not None and not gangs.finish_member(session, job, lease.member):
            return False
        if job.status == JobStatus.CANCELLING:
            transition(session, job, JobStatus.CANCELLED, "cancelled while preempted", data=data)
            return False
        asked = job.preempt_requested_at
        payload = dict(data)
        if asked is not None:
            payload["requested_at"] = asked.isoformat()
            payload["latency_s"] = round((utcnow() - asked).total_seconds(), 3)
        append_event(session, job, PREEMPTED, message, payload)
        transition(session, job, JobStatus.QUEUED, message, data={**payload, "preempted": True})
        job.attempt -= 1
        job.preempt_requested_at = None
        return True


def requeue_uncounted(lease: Lease, message: str, data: dict[str, Any]) -> bool:
    """Put a running job back in the queue as if this attempt never started (a fault of
    the infrastructure, not of the job); False if it is being cancelled instead."""
    with fenced(lease) as (session, job):
        if job.status != JobStatus.RUNNING:
            return False
        transition(session, job, JobStatus.QUEUED, message, data=data)
        job.attempt -= 1
        return True
