"""A schedule's runs on beat: fire the due schedules, and settle each run when its eval
job ends (compare with the baseline, store comparison and verdict, note a regression).

Firing takes one row lock per schedule, so two beats never double-fire; a beat that was
down fires once and skips to the next cron time, no catch-up storm. Settling is
idempotent: a run is settled once, under its row lock.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.db import get_sessionmaker
from store.errors import BadRequest, NotFound
from store.evals import compare_jobs, summarize
from store.lifecycle import append_event
from store.models import TERMINAL_STATUSES, Job, JobStatus, Schedule, ScheduleRun, utcnow
from store.schedules import RUN_KEY, fire, next_fire

log = logging.getLogger(__name__)

NO_BASELINE = "no baseline"
"""The verdict of a run with nothing to compare with: not a `pass`, which would claim one."""


def fire_due(now: datetime | None = None) -> list[int]:
    """Fire every enabled schedule due at `now` once; the new run ids. A schedule whose
    firing fails is skipped until the next call."""
    now = now or utcnow()
    fired: list[int] = []
    broken: set[str] = set()
    with get_sessionmaker()() as session:
        while True:
            schedule = session.scalar(
                select(Schedule)
                .where(
                    Schedule.enabled.is_(True),
                    Schedule.next_run_at <= now,
                    Schedule.id.not_in(broken),
                )
                .order_by(Schedule.next_run_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if schedule is None:
                return fired
            schedule.next_run_at = next_fire(schedule.cron, now)
            try:
                run = fire(session, schedule)  # commits the new next_run_at with the run
            except Exception:
                session.rollback()
                broken.add(schedule.id)
                log.exception("schedule %s: firing failed; retrying next tick", schedule.name)
                continue
            log.info("schedule %s fired run %s (job %s)", schedule.name, run.id, run.job_id)
            fired.append(run.id)


def unsettled_finished_jobs() -> list[str]:
    """The finished jobs of runs still open (the worker's completion hook missed them)."""
    with get_sessionmaker()() as session:
        return list(
            session.scalars(
                select(ScheduleRun.job_id)
                .join(Job, Job.id == ScheduleRun.job_id)
                .where(ScheduleRun.finished_at.is_(None), Job.status.in_(TERMINAL_STATUSES))
            ).all()
        )


@dataclass(frozen=True)
class Settled:
    """A run just settled: its verdict, and the webhook payload and address."""

    run_id: int
    verdict: str | None
    payload: dict[str, Any]
    webhook_url: str | None


def settle(job_id: str) -> Settled | None:
    """Settle the run of the finished eval job `job_id`; None unless a schedule submitted
    it and its run was still open (or the job failed: its run records why)."""
    with get_sessionmaker()() as session:
        return _settle(session, job_id)


def _settle(session: Session, job_id: str) -> Settled | None:
    job = session.get(Job, job_id)
    run_id = (job.metadata_ or {}).get(RUN_KEY) if job is not None else None
    if job is None or run_id is None or job.status not in TERMINAL_STATUSES:
        return None
    run = session.scalar(select(ScheduleRun).where(ScheduleRun.id == int(run_id)).with_for_update())
    if run is None or run.finished_at is not None:
        return None
    schedule = session.get(Schedule, run.schedule_id)
    assert schedule is not None  # the run is deleted with its schedule
    run.job_id = job.id
    run.finished_at = utcnow()
    if job.status != JobStatus.SUCCEEDED:
        run.comparison = {"error": f"eval job {job.id} ended {job.status}: {job.error or ''}"}
        session.commit()
        return None
    baseline_id = _baseline_job(session, schedule, run)
    run.verdict, run.comparison = _compare(session, baseline_id, job.id, schedule.threshold)
    payload = {
        "event": "regression",
        "schedule": {"id": schedule.id, "name": schedule.name},
        "run_id": run.id,
        "job_id": job.id,
        "verdict": run.verdict,
        "comparison": run.comparison,
    }
    if run.verdict == "regression":
        append_event(
            session,
            job,
            "regression",
            f"schedule {schedule.name!r}: regression against job {baseline_id}: "
            f"{summarize(run.comparison['benchmarks'])}",
            payload,
        )
    session.commit()
    return Settled(run.id, run.verdict, payload, schedule.webhook_url)


def _baseline_job(session: Session, schedule: Schedule, run: ScheduleRun) -> str | None:
    """The fixed baseline job, or the job of the latest earlier run that succeeded."""
    if not schedule.baseline.get("previous"):
        return str(schedule.baseline["job_id"])
    return session.scalar(
        select(ScheduleRun.job_id)
        .join(Job, Job.id == ScheduleRun.job_id)
        .where(
            ScheduleRun.schedule_id == schedule.id,
            ScheduleRun.id < run.id,
            Job.status == JobStatus.SUCCEEDED,
        )
        .order_by(ScheduleRun.id.desc())
        .limit(1)
    )


def _compare(
    session: Session, baseline_id: str | None, job_id: str, threshold: float
) -> tuple[str | None, dict[str, Any]]:
    """(verdict, comparison) of the run's job against its baseline."""
    if baseline_id is None:
        note = "first run: no earlier successful run to compare with"
        return NO_BASELINE, {"baseline_job_id": None, "note": note, "benchmarks": []}
    try:
        rows, overall = compare_jobs(session, baseline_id, job_id, threshold=threshold)
    except (BadRequest, NotFound) as exc:
        return None, {"baseline_job_id": baseline_id, "error": str(exc)}
    return overall, {"baseline_job_id": baseline_id, "threshold": threshold, "benchmarks": rows}


def record_webhook(job_id: str, run_id: int, kind: str, message: str, attempt: int) -> None:
    """The outcome of one try of a regression's webhook (`webhook_sent` or
    `webhook_failed`), as an event of the run's job."""
    with get_sessionmaker()() as session:
        job = session.get(Job, job_id)
        if job is not None:
            append_event(session, job, kind, message, {"run_id": run_id, "try": attempt})
            session.commit()
