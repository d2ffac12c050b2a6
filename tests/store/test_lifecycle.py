"""The lifecycle: allowed transitions, an event for each, 409 for the rest."""

import pytest
from sqlalchemy import select

from store.lifecycle import ALLOWED, IllegalTransition, JobError, check_transition, transition
from store.models import Job, JobEvent, JobStatus
from tests.service.helpers import train_body

S = JobStatus


def make_job(session, status: JobStatus) -> Job:  # type: ignore[no-untyped-def]
    job = Job(
        kind="train",
        status=status,
        spec=train_body(),
        queue="cpu",
    )
    session.add(job)
    session.commit()
    return job


def test_allowed_transitions_are_exactly_the_documented_ones():
    allowed = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    assert allowed == {
        (S.QUEUED, S.RUNNING),
        (S.QUEUED, S.CANCELLED),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.CANCELLED),
        (S.RUNNING, S.CANCELLING),
        (S.RUNNING, S.QUEUED),
        (S.CANCELLING, S.CANCELLED),
        (S.CANCELLING, S.FAILED),
        (S.CANCELLING, S.SUCCEEDED),
    }
    for src in S:
        for dst in S:
            if (src, dst) not in allowed:
                with pytest.raises(IllegalTransition):
                    check_transition("j", src, dst)


def test_each_transition_appends_an_event_and_stamps_times(session):
    job = make_job(session, S.QUEUED)
    transition(session, job, S.RUNNING)
    job.lease_owner = "w1"
    transition(session, job, S.CANCELLING)
    transition(session, job, S.CANCELLED, "stopped at step 2")
    session.commit()
    events = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id)).all()
    assert [(e.data["from"], e.data["to"]) for e in events] == [
        ("queued", "running"),
        ("running", "cancelling"),
        ("cancelling", "cancelled"),
    ]
    assert events[-1].message == "stopped at step 2"
    assert job.started_at and job.finished_at and job.lease_owner is None


def test_requeue_after_lost_lease_releases_lease_and_keeps_fencing_token(session):
    job = make_job(session, S.RUNNING)
    job.lease_owner, job.fencing_token = "dead-worker", 4
    transition(session, job, S.QUEUED, "lease expired")
    session.commit()
    assert job.status == S.QUEUED and job.lease_owner is None and job.lease_expires_at is None
    assert job.fencing_token == 4 and job.enqueued_at is None


def test_failure_records_error_on_job_and_event(session):
    job = make_job(session, S.RUNNING)
    error = JobError("out_of_memory", "CUDA out of memory", 1)
    event = transition(session, job, S.FAILED, error=error)
    session.commit()
    assert (job.error, job.error_code, job.error_attempt) == (
        "CUDA out of memory",
        "out_of_memory",
        1,
    )
    assert event.data["error"] == {
        "code": "out_of_memory",
        "message": "CUDA out of memory",
        "attempt": 1,
    }


def test_success_clears_the_error_of_an_earlier_attempt(session):
    job = make_job(session, S.RUNNING)
    killed = JobError("killed", "trainer process was killed", 1)
    transition(session, job, S.QUEUED, "attempt 1 failed", error=killed)
    transition(session, job, S.RUNNING)
    transition(session, job, S.SUCCEEDED, "attempt 2 finished")
    session.commit()
    assert (job.error, job.error_code, job.error_attempt) == (None, None, None)


def test_illegal_transition_changes_nothing(session):
    job = make_job(session, S.SUCCEEDED)
    with pytest.raises(IllegalTransition, match="terminal"):
        transition(session, job, S.RUNNING)
    assert job.status == S.SUCCEEDED
    assert session.scalars(select(JobEvent)).all() == []
