"""Send committed jobs' run messages, and keep what their rows say about it true.

A queued job's `enqueued_at` says its run message was handed to the broker. A new job is
inserted with it already set, so the submit path writes nothing after its publish; a
publish the broker refuses clears it again. A crash between the commit and the publish
leaves a job that says so without a message: the reconciler compares queued jobs with
the broker's content and re-sends it, and so does a replay of its Idempotency-Key (only
when the broker does not hold the message). A duplicate is harmless: the claim lets only
one message run the job.
"""

import logging
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from store import broker
from store.broker import RunMessage
from store.db import get_sessionmaker
from store.models import Job, JobEvent, JobStatus, utcnow

log = logging.getLogger(__name__)

JOBS: Table = Job.__table__  # type: ignore[assignment]
EVENTS: Table = JobEvent.__table__  # type: ignore[assignment]


def send(
    session: Session, messages: Sequence[RunMessage], resent_by: str | None = None
) -> list[str]:
    """Publish the run messages of committed queued jobs (one broker round trip); the ids
    sent.

    A first send (`resent_by` None) trusts the committed rows to say `enqueued_at`, so
    success writes nothing. A re-send, e.g. `resent_by="the reconciler"`, then stamps
    `enqueued_at` and logs an `enqueued` event on the jobs still queued, and returns those.
    When the broker refuses, `enqueued_at` is cleared on the jobs still queued (a replay or
    the reconciler sends them); a first send records why (`enqueue_failed`), a re-send only
    logs it (its sender retries anyway). Never raises: the jobs are safe in the database.
    """
    if not messages:
        return []
    try:
        broker.enqueue(messages)
    except Exception as exc:  # any transport error
        log.warning("enqueue of %d job(s) failed: %s", len(messages), exc)
        _unmark(session, messages, None if resent_by else exc)
        session.commit()
        return []
    if resent_by is None:
        return [m.job_id for m in messages]
    now = utcnow()
    queues = {m.job_id: m.queue for m in messages}
    stamped = mark(session, list(queues), now)
    _log(
        session,
        stamped,
        now,
        "enqueued",
        [f"re-sent to queue {queues[i]} by {resent_by}" for i, _ in stamped],
    )
    session.commit()
    return [job_id for job_id, _ in stamped]


def resend(job_ids: Collection[str], resent_by: str) -> list[str]:
    """`send` again the run messages of those of `job_ids` still queued, in a session of
    its own; the ids sent and stamped."""
    with get_sessionmaker()() as session:
        rows = session.execute(
            select(JOBS.c.id, JOBS.c.queue, JOBS.c.priority).where(
                JOBS.c.id.in_(job_ids), JOBS.c.status == JobStatus.QUEUED
            )
        ).all()
        return send(session, [RunMessage(*row) for row in rows], resent_by)


def hand_back(job_id: str) -> bool:
    """Publish the run message of `job_id` again if it is still queued, writing nothing:
    a slot that could not or did not run it spent its message (`store.placement`). True
    if sent or no longer needed."""
    with get_sessionmaker()() as session:
        row = session.execute(
            select(JOBS.c.id, JOBS.c.queue, JOBS.c.priority).where(
                JOBS.c.id == job_id, JOBS.c.status == JobStatus.QUEUED
            )
        ).one_or_none()
    if row is None:
        return True
    try:
        broker.enqueue([RunMessage(*row)])
    except Exception as exc:  # any transport error
        log.warning("hand-back of job %s failed: %s", job_id, exc)
        return False
    return True


def mark(session: Session, job_ids: Sequence[str], now: datetime) -> list[tuple[str, int]]:
    """Stamp `enqueued_at` (and `updated_at`) with `now` on the jobs still queued, in the
    caller's transaction; their ids and attempts."""
    rows = session.execute(
        JOBS.update()
        .where(JOBS.c.id.in_(job_ids), JOBS.c.status == JobStatus.QUEUED)
        .values(enqueued_at=now, updated_at=now)
        .returning(JOBS.c.id, JOBS.c.attempt)
    )
    return [(job_id, attempt) for job_id, attempt in rows]


def _unmark(session: Session, messages: Sequence[RunMessage], why: Exception | None) -> None:
    """Clear `enqueued_at` on the jobs still queued and, given `why`, log `enqueue_failed`.

    `updated_at` stays: the row goes back to what it said before the mark, so the 201 of
    `POST /jobs` still equals a later read.
    """
    cleared = session.execute(
        JOBS.update()
        .where(JOBS.c.id.in_([m.job_id for m in messages]), JOBS.c.status == JobStatus.QUEUED)
        .values(enqueued_at=None, updated_at=JOBS.c.updated_at)
        .returning(JOBS.c.id, JOBS.c.attempt)
    ).all()
    if why is not None:
        message = (
            f"broker publish failed ({type(why).__name__}: {why}); the job stays queued "
            "and the reconciler re-enqueues it"
        )
        _log(session, cleared, utcnow(), "enqueue_failed", [message] * len(cleared))


def _log(
    session: Session, jobs: Sequence[tuple[str, int]], now: datetime, kind: str, messages: list[str]
) -> None:
    if jobs:
        session.execute(
            insert(EVENTS),
            [
                {
                    "job_id": job_id,
                    "ts": now,
                    "kind": kind,
                    "message": message,
                    "attempt": attempt,
                    "data": {},
                }
                for (job_id, attempt), message in zip(jobs, messages, strict=True)
            ],
        )
