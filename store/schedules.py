"""Schedules: stored cron rules that submit eval jobs; the database side of `/schedules`.

`fire` is the one way a run starts, for `POST /schedules/{id}/trigger` and for the beat
task alike: resolve the target to a model, submit the eval job through `store.jobs`
(the same path as `POST /jobs`), and record the run. The job's metadata names its run,
so the completion hook finds the run even if the process died right after submitting.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import dispatch
from store.broker import RunMessage
from store.errors import BadRequest, NotFound
from store.jobs import get_job, metadata_filter, submit
from store.models import Checkpoint, Job, JobStatus, Schedule, ScheduleRun, utcnow
from trainer.spec import (
    CheckpointRef,
    EvalJobRequest,
    EvalModel,
    JobBaseline,
    ScheduleEvalSpec,
    SchedulePatch,
    ScheduleRequest,
    ScheduleTarget,
)

SCHEDULE_KEY = "schedule_id"
RUN_KEY = "schedule_run_id"
"""Metadata keys on every eval job a schedule submits."""
PREVIOUS = {"previous": True}
"""How the `"previous"` baseline is stored (the column holds a JSON object)."""


class NameTaken(Exception):
    """Schedule names are unique (409)."""


class TargetUnresolved(LookupError):
    """The target names no model yet (e.g. no succeeded train job with a checkpoint)."""


def next_fire(cron: str, after: datetime) -> datetime:
    """The first time strictly after `after` that `cron` matches (UTC)."""
    from croniter import croniter

    return croniter(cron, after).get_next(datetime)


def baseline_json(baseline: str | JobBaseline) -> dict[str, Any]:
    return PREVIOUS if baseline == "previous" else {"job_id": baseline.job_id}  # type: ignore[union-attr]


def baseline_out(stored: dict[str, Any]) -> str | dict[str, Any]:
    """The stored baseline in the request's form: `"previous"` or `{"job_id": ...}`."""
    return "previous" if stored.get("previous") else stored


def create(
    session: Session, request: ScheduleRequest, owner: str, visible_owner: str | None
) -> Schedule:
    """A schedule of `owner`; its baseline job must be visible to the caller."""
    if isinstance(request.baseline, JobBaseline):
        try:
            get_job(session, request.baseline.job_id, owner=visible_owner)
        except NotFound as exc:
            raise BadRequest(
                f'baseline: {exc}; name an existing eval job or use "previous"',
                ("body", "baseline", "job_id"),
            ) from exc
    now = utcnow()
    schedule = Schedule(
        owner=owner,
        name=request.name,
        cron=request.cron,
        spec=request.eval.model_dump(mode="json"),
        target=request.target.model_dump(mode="json", exclude_none=True),
        baseline=baseline_json(request.baseline),
        threshold=request.threshold,
        webhook_url=None if request.webhook_url is None else str(request.webhook_url),
        enabled=request.enabled,
        next_run_at=next_fire(request.cron, now) if request.enabled else None,
    )
    session.add(schedule)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise NameTaken(
            f"a schedule named {request.name!r} exists; pick another name or PATCH that one"
        ) from exc
    return schedule


def get(
    session: Session, schedule_id: str, owner: str | None = None, *, for_update: bool = False
) -> Schedule:
    """The schedule, if it exists and `owner` (None: anyone) owns it; else NotFound."""
    stmt = select(Schedule).where(Schedule.id == schedule_id)
    if owner is not None:
        stmt = stmt.where(Schedule.owner == owner)
    schedule = None
    if len(schedule_id) <= 36 and "\x00" not in schedule_id:
        schedule = session.scalar(stmt.with_for_update() if for_update else stmt)
    if schedule is None:
        raise NotFound(f"no schedule with id {schedule_id!r}")
    return schedule


def list_all(session: Session, owner: str | None = None) -> list[Schedule]:
    stmt = select(Schedule).order_by(Schedule.name, Schedule.owner)
    if owner is not None:
        stmt = stmt.where(Schedule.owner == owner)
    return list(session.scalars(stmt))


def update(
    session: Session, schedule_id: str, patch: SchedulePatch, owner: str | None = None
) -> Schedule:
    """Apply the fields present in `patch`; (re-)enabling or a new cron re-plans the next run."""
    schedule = get(session, schedule_id, owner, for_update=True)
    given = patch.model_fields_set
    if "cron" in given and patch.cron is not None:
        schedule.cron = patch.cron
    if "threshold" in given and patch.threshold is not None:
        schedule.threshold = patch.threshold
    if "webhook_url" in given:
        schedule.webhook_url = None if patch.webhook_url is None else str(patch.webhook_url)
    if "enabled" in given and patch.enabled is not None:
        schedule.enabled = patch.enabled
    schedule.next_run_at = next_fire(schedule.cron, utcnow()) if schedule.enabled else None
    session.commit()
    return schedule


def delete(session: Session, schedule_id: str, owner: str | None = None) -> None:
    """Drop the schedule and its runs; the eval jobs it submitted stay."""
    session.delete(get(session, schedule_id, owner))
    session.commit()


def runs(
    session: Session, schedule_id: str, limit: int, owner: str | None = None
) -> list[ScheduleRun]:
    """Newest first."""
    get(session, schedule_id, owner)
    stmt = (
        select(ScheduleRun)
        .where(ScheduleRun.schedule_id == schedule_id)
        .order_by(ScheduleRun.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def resolve_target(session: Session, target: ScheduleTarget, owner: str) -> EvalModel:
    """The model a run evaluates; a checkpoint target is pinned to a concrete step of one
    of `owner`'s train jobs (a schedule never evaluates another principal's model)."""
    if target.model_path is not None:
        return EvalModel(path=target.model_path)
    assert target.latest_checkpoint_of is not None
    wanted = target.latest_checkpoint_of.metadata
    stmt = (
        select(Job.id, Checkpoint.step)
        .join(Checkpoint, Checkpoint.job_id == Job.id)
        .where(Job.kind == "train", Job.status == JobStatus.SUCCEEDED, Job.owner == owner)
    )
    stmt = metadata_filter(session, stmt, wanted)
    row = session.execute(
        stmt.order_by(Job.finished_at.desc(), Checkpoint.step.desc()).limit(1)
    ).first()
    if row is None:
        pairs = ", ".join(f"{k}={v}" for k, v in wanted.items())
        raise TargetUnresolved(
            f"no succeeded train job with metadata {pairs} has a checkpoint yet; "
            "the next run retries, or point the target at a model_path"
        )
    return EvalModel(checkpoint=CheckpointRef(job_id=row.id, step=row.step))


def fire(session: Session, schedule: Schedule) -> ScheduleRun:
    """Start a run now: submit its eval job (committed and enqueued) and return the run.

    A target that names no model yet gives a finished run whose comparison holds the
    error, so the miss is visible in `GET /schedules/{id}/runs`.
    """
    now = utcnow()
    schedule.last_run_at = now
    run = ScheduleRun(schedule_id=schedule.id, created_at=now)
    session.add(run)
    session.flush()
    try:
        model = resolve_target(
            session, ScheduleTarget.model_validate(schedule.target), schedule.owner
        )
    except TargetUnresolved as exc:
        run.comparison = {"error": str(exc)}
        run.finished_at = now
        session.commit()
        return run
    spec = ScheduleEvalSpec.model_validate(schedule.spec).with_model(model)
    request = EvalJobRequest.model_validate(
        {
            **spec.model_dump(mode="json"),
            "kind": "eval",
            "metadata": {SCHEDULE_KEY: schedule.id, RUN_KEY: str(run.id)},
        }
    )
    job, _ = submit(session, request, None, schedule.owner)  # commits run and job together
    run.job_id = job.id
    session.commit()
    dispatch.send(session, [RunMessage(job.id, job.queue, job.priority)])
    return run


__all__ = [
    "RUN_KEY",
    "SCHEDULE_KEY",
    "NameTaken",
    "TargetUnresolved",
    "create",
    "delete",
    "fire",
    "get",
    "list_all",
    "next_fire",
    "resolve_target",
    "runs",
    "update",
]
