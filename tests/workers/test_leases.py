"""Leases, fencing and the reconciler against the real Postgres and Redis (no worker)."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.worker_settings import WorkerSettings
from store import broker
from store.leases import LeaseLost, claim, fenced, renew
from store.models import Job, JobEvent, JobStatus, Metric, Worker, WorkerStatus, utcnow
from store.recovery import database_started_at
from workers.reconciler import reconcile
from workers.reporting import DbReporter

SETTINGS = WorkerSettings(lease_s=30, lease_renew_s=5, metrics_batch=1, requeue_lost_after_s=60)


def make_job(session: Session, **fields: object) -> str:
    job = Job(kind="train", spec={}, queue="cpu", **{"enqueued_at": utcnow(), **fields})
    session.add(job)
    session.commit()
    return job.id


def expire_lease(session: Session, job_id: str) -> None:
    """The lease lapsed a second ago: its worker died, long after the database started."""
    session.execute(
        update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()


def test_concurrent_claims_of_one_job_let_exactly_one_worker_run_it(session: Session) -> None:
    job_id = make_job(session)
    with ThreadPoolExecutor(8) as pool:
        leases = list(pool.map(lambda i: claim(job_id, f"w{i}", 30), range(8)))
    winners = [lease for lease in leases if lease is not None]
    assert len(winners) == 1
    job = session.get_one(Job, job_id)
    assert (job.status, job.attempt, job.fencing_token) == ("running", 1, winners[0].token)
    assert job.lease_owner == winners[0].owner


def test_each_claim_writes_a_status_event_and_the_first_start_stays(session: Session) -> None:
    job_id = make_job(session, max_attempts=2)
    assert claim(job_id, "first", 30) is not None
    started = session.get_one(Job, job_id).started_at
    assert started is not None
    expire_lease(session, job_id)
    assert reconcile(SETTINGS).requeued == [job_id]
    assert claim(job_id, "second", 30) is not None
    session.expire_all()
    assert session.get_one(Job, job_id).started_at == started
    claims = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.kind == "status")
        .order_by(JobEvent.id)
    ).all()
    running = [(e.attempt, e.data) for e in claims if e.data["to"] == "running"]
    assert running == [
        (1, {"from": "queued", "to": "running", "owner": "first"}),
        (2, {"from": "queued", "to": "running", "owner": "second"}),
    ]


@pytest.mark.parametrize("status", ["running", "succeeded", "cancelled", "failed"])
def test_a_job_that_is_not_queued_cannot_be_claimed(session: Session, status: str) -> None:
    assert claim(make_job(session, status=status), "w", 30) is None


def test_a_stale_attempt_can_neither_write_nor_renew_after_its_job_was_reclaimed(
    session: Session, redis_url: str
) -> None:
    job_id = make_job(session, max_attempts=3)
    old = claim(job_id, "old", 30)
    assert old is not None
    DbReporter(old, SETTINGS).on_step_end(1, {"loss": 1.0})
    expire_lease(session, job_id)
    assert reconcile(SETTINGS).requeued == [job_id]
    new = claim(job_id, "new", 30)
    assert new is not None and new.token == old.token + 1 and new.attempt == 2

    stale = DbReporter(old, SETTINGS)
    with pytest.raises(LeaseLost):
        stale.on_step_end(1, {"loss": 99.0})
    with pytest.raises(LeaseLost):
        renew(old, 30)
    with pytest.raises(LeaseLost), fenced(old):
        pass
    DbReporter(new, SETTINGS).on_step_end(1, {"loss": 2.0})
    session.expire_all()
    values = session.scalars(select(Metric.values).where(Metric.job_id == job_id)).all()
    assert values == [{"loss": 2.0}]


def test_expired_lease_on_the_last_attempt_fails_the_job_with_a_clear_error(
    session: Session,
) -> None:
    job_id = make_job(session, max_attempts=1)
    assert claim(job_id, "crashy", 30) is not None
    expire_lease(session, job_id)
    assert reconcile(SETTINGS).failed == [job_id]
    session.expire_all()
    job = session.get_one(Job, job_id)
    assert job.status == JobStatus.FAILED
    assert "stopped heartbeating during attempt 1 of 1" in (job.error or "")
    assert job.lease_owner is None


def test_a_cancelling_job_whose_worker_died_ends_cancelled(session: Session) -> None:
    job_id = make_job(session)
    assert claim(job_id, "w", 30) is not None
    session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.CANCELLING))
    session.commit()
    expire_lease(session, job_id)
    assert reconcile(SETTINGS).cancelled == [job_id]
    session.expire_all()
    assert session.get_one(Job, job_id).status == JobStatus.CANCELLED


def test_queued_jobs_whose_message_is_missing_are_published_again(
    session: Session, redis_url: str
) -> None:
    waiting = make_job(session, enqueued_at=utcnow() - timedelta(hours=1))
    lost = make_job(session)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    broker.enqueue([broker.RunMessage(waiting, "cpu", 0)])  # still in the broker: left alone
    assert reconcile(SETTINGS).republished == [lost]
    queued = b"".join(b"".join(client.lrange(key, 0, -1)) for key in client.keys("cpu*"))
    assert queued.count(lost.encode()) == 1 and queued.count(waiting.encode()) == 1
    events = session.scalars(select(JobEvent.kind).where(JobEvent.job_id == lost)).all()
    assert "enqueued" in events
    assert reconcile(SETTINGS).republished == []


def test_a_worker_whose_heartbeat_stopped_is_marked_dead(session: Session) -> None:
    now = utcnow()
    session.add_all(
        [
            Worker(id="silent", host="h", heartbeat_at=now - timedelta(minutes=5)),
            Worker(id="alive", host="h", heartbeat_at=now),
        ]
    )
    session.commit()
    assert reconcile(SETTINGS).dead_workers == ["silent"]
    session.expire_all()
    assert session.get_one(Worker, "silent").status == WorkerStatus.DEAD
    assert session.get_one(Worker, "alive").status == WorkerStatus.ALIVE


def test_a_lease_that_lapsed_across_a_database_restart_is_requeued_without_counting_it(
    session: Session,
) -> None:
    """Its last renewal (`lease_s` before the expiry) came before the server started: the
    worker could not renew because the database was down (tests/workers/test_db_restart.py
    stops a real server), even on the job's last attempt."""
    job_id = make_job(session, max_attempts=1)
    assert claim(job_id, "w", 30) is not None
    started = database_started_at(session)
    assert started is not None
    renewed = started - timedelta(seconds=1)
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(lease_expires_at=renewed + timedelta(seconds=SETTINGS.lease_s))
    )
    session.commit()
    assert reconcile(SETTINGS).requeued == [job_id]
    session.expire_all()
    job = session.get_one(Job, job_id)
    assert (job.status, job.attempt, job.error_code) == ("queued", 0, None)
