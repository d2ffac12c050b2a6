"""`/studies`: compare training recipes as one request (arms x seeds as jobs), its status,
cancel, and the report."""

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from config import spec_policy
from config.settings import Settings, get_settings
from service.api.deps import REPLAY_HEADER, IdempotencyKey, ReadToken, SessionDep, SubmitToken
from service.schemas import ErrorOut
from service.study_schemas import StudyOut, StudyPage, StudyReport
from service.study_views import study_out
from store import studies
from store.db import get_sessionmaker
from store.models import TokenScope
from trainer.spec.study import ArmInvalid, Member, StudyRequest, expand, on_policy_warning

router = APIRouter(prefix="/studies", tags=["studies"])

NOT_FOUND = {404: {"model": ErrorOut, "description": "unknown study id"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyOut,
    responses={
        200: {"model": StudyOut, "description": f"replay of an Idempotency-Key ({REPLAY_HEADER})"},
        422: {
            "description": "an unknown override path, an arm whose spec is invalid (located "
            "at `arms.<arm>.<field>`), a study above the operator's `max_study_jobs`, or an "
            "Idempotency-Key reused with another body"
        },
        429: {"model": ErrorOut, "description": "the principal's queued-jobs limit"},
    },
)
async def submit_study(
    request: StudyRequest,
    token: SubmitToken,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> StudyOut:
    """Queue one train job per (arm, seed), each arm's override applied to `base`; each
    member's eval is submitted when its train job succeeds. Everything is checked first:
    nothing is queued unless every arm is valid."""
    settings = get_settings()
    members = _checked_members(request, settings, token.scope == TokenScope.ADMIN, token.principal)
    warning = on_policy_warning(request, members)
    out, replayed = await run_in_threadpool(
        _create, request, [warning] if warning else [], idempotency_key, token.principal
    )
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers[REPLAY_HEADER] = "true"
    return out


def _checked_members(
    request: StudyRequest, settings: Settings, admin: bool, principal: str
) -> list[Member]:
    if request.size > settings.max_study_jobs:
        _refuse(
            ("body", "seeds"),
            f"the study makes {request.size} jobs ({len(request.arms)} arms x "
            f"{len(request.seeds)} seeds, a train and an eval job each); the operator allows "
            f"at most {settings.max_study_jobs} (DGPO_MAX_STUDY_JOBS): use fewer arms or seeds",
        )
    try:
        members = expand(request, "0" * 36)
    except ArmInvalid as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors]
        ) from exc
    violations = spec_policy.check_eval_sets(
        ("eval", "benchmarks"), request.eval.benchmarks, settings
    )
    for member in members[:: len(request.seeds)]:  # seeds differ only in `seed`
        train = member.train
        found = [
            *spec_policy.check_spec(train, settings),
            *spec_policy.check_envelope(train, principal, admin, settings),
            *(spec_policy.check_extras(train) if settings.embedded else []),
            *spec_policy.check_model(train, on_disk=settings.embedded),
        ]
        violations += [spec_policy.Violation(("arms", member.arm, *v.loc), v.msg) for v in found]
    spec_policy.raise_if(violations)
    return members


def _refuse(loc: tuple[str, ...], message: str) -> None:
    raise RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _create(
    request: StudyRequest, warnings: list[str], key: str | None, owner: str
) -> tuple[StudyOut, bool]:
    with get_sessionmaker()() as session:
        study, outcomes, replayed = studies.create(session, request, warnings, key, owner)
        failed = next((o for o in outcomes if isinstance(o, Exception)), None)
        if failed is not None:  # a member's key reused with another body, or the database
            raise failed
        return study_out(session, study), replayed


@router.get("", response_model=StudyPage)
def list_studies(session: SessionDep, token: ReadToken) -> StudyPage:
    """The principal's studies (an admin's: everyone's), newest first (at most 100)."""
    found = studies.list_all(session, owner=token.visible_owner)
    return StudyPage(items=[study_out(session, s) for s in found])


@router.get("/{study_id}", response_model=StudyOut, responses=NOT_FOUND)
def get_study(study_id: str, session: SessionDep, token: ReadToken) -> StudyOut:
    """Status, progress, incomplete arms and every member with its arm and seed."""
    return study_out(session, studies.get(session, study_id, owner=token.visible_owner))


@router.post("/{study_id}/cancel", response_model=StudyOut, responses=NOT_FOUND)
def cancel_study(study_id: str, session: SessionDep, token: SubmitToken) -> StudyOut:
    """Cancel every unfinished member (queued at once, running at its next step); no eval
    is submitted afterwards. Idempotent."""
    return study_out(session, studies.cancel(session, study_id, owner=token.visible_owner))


@router.get(
    "/{study_id}/report",
    response_model=StudyReport,
    responses={
        **NOT_FOUND,
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "the report (`format=csv`: one long table, as a download)",
        },
    },
)
def report(
    study_id: str,
    session: SessionDep,
    token: ReadToken,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> StudyReport | Response:
    """Per arm and step the training metrics' mean and 95 % CI across seeds; the final
    evals' scores; each arm against the baseline (paired bootstrap, Holm-corrected
    verdicts); compute per arm; and what could not be compared. Works on a running study
    (it reports what has finished)."""
    from service import study_report  # numpy: loaded on the first report, not at start-up

    found = study_report.build(session, studies.get(session, study_id, owner=token.visible_owner))
    if format == "json":
        return found
    buffer = io.StringIO()
    csv.writer(buffer).writerows(study_report.csv_rows(found))
    name = f"study-{found.study_id}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
