"""`/queue` and `/workers`: demand and capacity for the GPU-fleet scheduler."""

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import AdminToken, ReadToken, SessionDep
from service.schemas import ErrorOut, QueueOut, WorkerOut
from store import fleet
from store import workers as worker_rows
from store.models import WorkerStatus

router = APIRouter(tags=["fleet"])


@router.get("/queue", response_model=QueueOut)
def queue(session: SessionDep, _: ReadToken) -> QueueOut:
    """Per queue and GPU type: queued jobs, requested GPUs, oldest wait, running jobs."""
    return QueueOut.model_validate(fleet.queue_summary(session), from_attributes=True)


@router.get("/workers", response_model=list[WorkerOut])
def workers(
    session: SessionDep,
    _: ReadToken,
    status: Annotated[WorkerStatus | None, Query()] = None,
) -> list[WorkerOut]:
    """Registered workers with their GPUs, queues, slots, heartbeat and running jobs."""
    return [WorkerOut.model_validate(w) for w in fleet.list_workers(session, status)]


@router.post(
    "/workers/{worker_id}/drain",
    response_model=WorkerOut,
    responses={404: {"model": ErrorOut, "description": "unknown worker id"}},
)
def drain_worker(
    worker_id: str,
    _: AdminToken,
    preempt: Annotated[
        bool,
        Query(description="preempt its running jobs: each checkpoints and is queued again"),
    ] = False,
) -> WorkerOut:
    """Stop a worker claiming jobs (its slots hand their messages back to the queue); its
    running jobs finish, or with `preempt=true` stop at their next step boundary and go
    back to the queue (no attempt counted; they resume from that checkpoint elsewhere).
    It reports `draining`, then `drained` once it holds no job: it may then be stopped
    without losing work. Restarting it makes it `alive` again."""
    return WorkerOut.model_validate(worker_rows.drain(worker_id, preempt))
