"""`/queue` and `/workers`: demand and capacity for the GPU-fleet scheduler."""

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import ReadToken, SessionDep
from service.schemas import QueueOut, WorkerOut
from store import fleet
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
