"""`/jobs`: submit, list, read, cancel, and what a job produced."""

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from config import spec_policy
from config.settings import get_settings
from service import event_stream, submit_checks
from service.api.deps import REPLAY_HEADER, IdempotencyKey, ReadToken, SessionDep, SubmitToken
from service.job_views import with_results
from service.schemas import (
    CheckpointOut,
    ErrorOut,
    EventOut,
    JobOut,
    JobPage,
    MetricPoint,
    MetricSeries,
    ResultOut,
)
from store import job_data, jobs
from store.db import get_sessionmaker
from store.errors import BadRequest
from store.models import JobStatus, TokenScope
from trainer.spec import EvalJobRequest, TrainJobRequest

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND = {404: {"model": ErrorOut, "description": "unknown job id"}}
SafeStr = Annotated[str, Query(max_length=256, pattern=r"^[^\x00]*$")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": f"replay of an Idempotency-Key ({REPLAY_HEADER})"},
        422: {
            "description": "invalid spec, a place or priority the operator does not allow "
            "(the field is named), or an Idempotency-Key reused with another body"
        },
        429: {
            "model": ErrorOut,
            "description": "the principal is at its queued-jobs limit (max_queued_jobs)",
        },
    },
)
async def submit_job(
    # The discriminator is repeated here: FastAPI's Body() replaces the one in JobRequest,
    # and without it a 422 lists both kinds' errors under `function-after[...]` names.
    request: Annotated[TrainJobRequest | EvalJobRequest, Body(discriminator="kind")],
    token: SubmitToken,
    http: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a train or eval job owned by the token's principal; with an Idempotency-Key
    (unique per principal), retries return the same job.

    The 201 body's `warnings` say when no live worker serves the job's queue."""
    settings = get_settings()
    spec_policy.raise_if(spec_policy.check_spec(request, settings))
    admin = token.scope == TokenScope.ADMIN
    spec_policy.raise_if(spec_policy.check_envelope(request, token.principal, admin, settings))
    if settings.embedded:  # the API shares the worker's disk and Python
        spec_policy.raise_if(spec_policy.check_extras(request))
    spec_policy.raise_if(spec_policy.check_model(request, on_disk=settings.embedded))
    if isinstance(request, EvalJobRequest) and request.model.checkpoint is not None:
        await run_in_threadpool(_check_checkpoint_ref, request, token.visible_owner)
    job, replayed = await http.app.state.submissions.submit(
        request, idempotency_key, token.principal
    )
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers[REPLAY_HEADER] = "true"
    if not token.sees_hosts:  # a replay returns the job as it is now, perhaps running
        job.lease_owner = None
    return job


def _check_checkpoint_ref(request: EvalJobRequest, owner: str | None) -> None:
    with get_sessionmaker()() as session:
        submit_checks.check_checkpoint_ref(session, request, owner)


def _metadata_query(request: Request, pairs: list[str]) -> dict[str, str]:
    """`metadata=team:x` (repeatable) and `metadata.team=x` both filter on metadata."""
    wanted: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise BadRequest(
                f"metadata filter {pair!r} must look like key:value", ("query", "metadata")
            )
        wanted[key] = value
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata.") and len(name) > len("metadata."):
            wanted[name.removeprefix("metadata.")] = value
    if any("\x00" in s for item in wanted.items() for s in item):
        raise BadRequest("metadata filters cannot contain NUL characters", ("query", "metadata"))
    return wanted


@router.get("", response_model=JobPage)
def list_jobs(
    request: Request,
    session: SessionDep,
    token: ReadToken,
    status_: Annotated[list[JobStatus], Query(alias="status")] = [],  # noqa: B006
    kind: Annotated[list[Literal["train", "eval"]], Query()] = [],  # noqa: B006
    metadata: Annotated[
        list[str], Query(description="key:value (repeatable); or use `metadata.KEY=VALUE`")
    ] = [],  # noqa: B006
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobPage:
    """The principal's jobs (an admin's: everyone's) newest first, filtered by status, kind
    and metadata; page with `cursor`."""
    items, next_cursor = jobs.list_jobs(
        session,
        owner=token.visible_owner,
        statuses=status_,
        kinds=kind,
        metadata=_metadata_query(request, metadata),
        cursor=cursor,
        limit=limit,
    )
    return JobPage(
        items=with_results(session, items, sees_hosts=token.sees_hosts), next_cursor=next_cursor
    )


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: str, session: SessionDep, token: ReadToken) -> JobOut:
    return with_results(
        session,
        [jobs.get_job(session, job_id, owner=token.visible_owner)],
        sees_hosts=token.sees_hosts,
    )[0]


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "job already finished"}},
)
def cancel_job(job_id: str, session: SessionDep, token: SubmitToken) -> JobOut:
    """Queued → cancelled now; running → cancelling (stops at the next step). Idempotent."""
    return with_results(
        session, [jobs.cancel(session, job_id, token.visible_owner)], sees_hosts=token.sees_hosts
    )[0]


@router.get("/{job_id}/events", response_model=list[EventOut], responses=NOT_FOUND)
def job_events(
    job_id: str,
    session: SessionDep,
    token: ReadToken,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[EventOut]:
    """The job's append-only log, oldest first; poll with `after_id` = last id seen."""
    jobs.get_job(session, job_id, owner=token.visible_owner)
    return [EventOut.model_validate(e) for e in job_data.events(session, job_id, after_id, limit)]


@router.get(
    "/{job_id}/events/stream",
    response_class=StreamingResponse,
    responses={
        **NOT_FOUND,
        200: {
            "content": {event_stream.MEDIA_TYPE: {"schema": {"type": "string"}}},
            "description": "Server-Sent Events: `job_event` (an event, with its id), `job` "
            "(the job, when it changed), `end` (the final job; the stream then closes)",
        },
    },
)
def job_event_stream(
    job_id: str,
    session: SessionDep,
    token: ReadToken,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    last_event_id: Annotated[
        int | None, Header(alias="Last-Event-ID", ge=0, le=2**62, include_in_schema=False)
    ] = None,
) -> StreamingResponse:
    """Follow a job without polling: its events after `after_id` (or a reconnecting
    client's `Last-Event-ID`) as they are written, and the job whenever it changes, until
    it ends."""
    jobs.get_job(session, job_id, owner=token.visible_owner)
    start = last_event_id if last_event_id is not None else after_id
    return StreamingResponse(
        event_stream.stream(job_id, token.visible_owner, token.sees_hosts, start),
        media_type=event_stream.MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{job_id}/metrics", response_model=MetricSeries, responses=NOT_FOUND)
def job_metrics(
    job_id: str,
    session: SessionDep,
    token: ReadToken,
    names: Annotated[list[str], Query(description="metric names to keep (default all)")] = [],  # noqa: B006
    min_step: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    max_step: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    max_points: Annotated[int, Query(ge=2, le=10_000)] = 500,
) -> MetricSeries:
    """Per-step metrics in a step range, evenly downsampled to at most `max_points`."""
    jobs.get_job(session, job_id, owner=token.visible_owner)
    names = [n for part in names for n in part.split(",") if n]
    total, points = job_data.metric_series(
        session, job_id, names=names, min_step=min_step, max_step=max_step, max_points=max_points
    )
    return MetricSeries(
        job_id=job_id, total_points=total, points=[MetricPoint(**p) for p in points]
    )


@router.get("/{job_id}/checkpoints", response_model=list[CheckpointOut], responses=NOT_FOUND)
def job_checkpoints(job_id: str, session: SessionDep, token: ReadToken) -> list[CheckpointOut]:
    jobs.get_job(session, job_id, owner=token.visible_owner)
    return [CheckpointOut.model_validate(c) for c in job_data.checkpoints(session, job_id)]


@router.get("/{job_id}/results", response_model=list[ResultOut], responses=NOT_FOUND)
def job_results(
    job_id: str,
    session: SessionDep,
    token: ReadToken,
    benchmark: SafeStr | None = None,
) -> list[ResultOut]:
    """Eval scores per benchmark (periodic evals of a train job carry their step)."""
    jobs.get_job(session, job_id, owner=token.visible_owner)
    return [ResultOut.model_validate(r) for r in job_data.results(session, job_id, benchmark)]
