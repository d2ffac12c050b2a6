"""`/schedules`: cron rules that evaluate a target and compare each run with a baseline."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict

from config import outbound, spec_policy
from config.settings import Settings, get_settings
from service.api.deps import ReadToken, SessionDep, SubmitToken
from service.schemas import ErrorOut
from store import schedules
from store.models import Schedule
from trainer.spec import SchedulePatch, ScheduleRequest

router = APIRouter(prefix="/schedules", tags=["schedules"])

NOT_FOUND = {404: {"model": ErrorOut, "description": "unknown schedule id"}}


class ScheduleOut(BaseModel):
    id: str
    owner: str
    name: str
    cron: str
    eval: dict[str, Any]
    target: dict[str, Any]
    baseline: str | dict[str, Any]
    threshold: float
    webhook_url: str | None
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Schedule) -> "ScheduleOut":
        renamed = {"eval": row.spec, "baseline": schedules.baseline_out(row.baseline)}
        same = {name: getattr(row, name) for name in cls.model_fields if name not in renamed}
        return cls(**same, **renamed)


class ScheduleRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    schedule_id: str
    job_id: str | None
    verdict: str | None
    """pass | regression | improvement | no baseline (nothing earlier to compare with);
    None while the eval job runs or when it failed."""
    comparison: dict[str, Any] | None
    """Per-benchmark differences with CIs, or {"error": ...} when the run could not compare."""
    created_at: datetime
    finished_at: datetime | None


def _webhook_violations(url: object, settings: Settings) -> list[spec_policy.Violation]:
    if url is None:
        return []
    try:
        outbound.check_url(str(url), settings)
    except outbound.OutboundRefused as exc:
        return [spec_policy.Violation(("webhook_url",), str(exc))]
    return []


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleOut,
    responses={409: {"model": ErrorOut, "description": "name already used"}},
)
def create_schedule(
    request: Annotated[ScheduleRequest, Body()], session: SessionDep, token: SubmitToken
) -> ScheduleOut:
    """Store a schedule of the token's principal; beat fires it at each cron time (UTC)."""
    settings = get_settings()
    violations = _webhook_violations(request.webhook_url, settings)
    loc = ("eval", "benchmarks")
    violations += spec_policy.check_eval_sets(loc, request.eval.benchmarks, settings)
    if request.target.model_path is not None:
        loc = ("target", "model_path")
        violations += spec_policy.check_model_path(loc, request.target.model_path, settings)
    spec_policy.raise_if(violations)
    try:
        return ScheduleOut.of(
            schedules.create(session, request, token.principal, token.visible_owner)
        )
    except schedules.NameTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.get("", response_model=list[ScheduleOut])
def list_schedules(session: SessionDep, token: ReadToken) -> list[ScheduleOut]:
    return [ScheduleOut.of(s) for s in schedules.list_all(session, token.visible_owner)]


@router.get("/{schedule_id}", response_model=ScheduleOut, responses=NOT_FOUND)
def get_schedule(schedule_id: str, session: SessionDep, token: ReadToken) -> ScheduleOut:
    return ScheduleOut.of(schedules.get(session, schedule_id, token.visible_owner))


@router.patch("/{schedule_id}", response_model=ScheduleOut, responses=NOT_FOUND)
def patch_schedule(
    schedule_id: str,
    patch: Annotated[SchedulePatch, Body()],
    session: SessionDep,
    token: SubmitToken,
) -> ScheduleOut:
    """Enable/disable, or change the cron, threshold or webhook; absent fields stay."""
    spec_policy.raise_if(_webhook_violations(patch.webhook_url, get_settings()))
    return ScheduleOut.of(schedules.update(session, schedule_id, patch, token.visible_owner))


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_schedule(schedule_id: str, session: SessionDep, token: SubmitToken) -> None:
    """Delete the schedule and its run history (the eval jobs it submitted stay)."""
    schedules.delete(session, schedule_id, token.visible_owner)


@router.post(
    "/{schedule_id}/trigger",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleRunOut,
    responses=NOT_FOUND,
)
def trigger_schedule(schedule_id: str, session: SessionDep, token: SubmitToken) -> ScheduleRunOut:
    """Fire now (enabled or not), outside the cron times; the verdict follows the job."""
    run = schedules.fire(session, schedules.get(session, schedule_id, token.visible_owner))
    return ScheduleRunOut.model_validate(run)


@router.get("/{schedule_id}/runs", response_model=list[ScheduleRunOut], responses=NOT_FOUND)
def schedule_runs(
    schedule_id: str,
    session: SessionDep,
    token: ReadToken,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ScheduleRunOut]:
    """Runs newest first, each with its eval job, verdict and comparison."""
    found = schedules.runs(session, schedule_id, limit, token.visible_owner)
    return [ScheduleRunOut.model_validate(r) for r in found]
