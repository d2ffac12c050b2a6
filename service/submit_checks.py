"""Submit-time checks that need the database, so a job that can only fail or wait forever
is refused (422 naming the field) or flagged (a warning in the 201 body) at once."""

from collections.abc import Iterable
from typing import Any, NoReturn

from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import TERMINAL_STATUSES, Checkpoint, Job, Worker, WorkerStatus
from trainer.spec import EvalJobRequest, TrainJobRequest


def check_checkpoint_ref(
    session: Session, request: TrainJobRequest | EvalJobRequest, owner: str | None
) -> None:
    """An eval's `model.checkpoint` must name a train job that `owner` can see (None: an
    admin, who sees all) and, for a numbered step, one of its checkpoints; `latest` of an
    unfinished job is fine (it may checkpoint yet). Another owner's job reads as missing."""
    ref = request.model.checkpoint if isinstance(request, EvalJobRequest) else None
    if ref is None:
        return
    job = session.get(Job, ref.job_id) if len(ref.job_id) <= 36 else None
    if job is None or (owner is not None and job.owner != owner):
        _refuse("job_id", ref.job_id, f"no job with id {ref.job_id!r}")
    if job.kind != "train":
        _refuse("job_id", ref.job_id, f"job {job.id} is an eval job; name a train job")
    steps = sorted(session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job.id)))
    if ref.step == "latest":
        if not steps and job.status in TERMINAL_STATUSES:
            _refuse("step", ref.step, f"train job {job.id} ended {job.status} with no checkpoint")
    elif ref.step not in steps:
        have = f"its checkpoints are at steps {steps}" if steps else "it has no checkpoint yet"
        _refuse(
            "step", ref.step, f"train job {job.id} has no checkpoint at step {ref.step}; {have}"
        )


def _refuse(field: str, value: Any, message: str) -> NoReturn:
    raise RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("body", "eval", "model", "checkpoint", field),
                "msg": message,
                "input": value,
            }
        ]
    )


def served_queues(session: Session) -> set[str]:
    """Every queue some live worker consumes."""
    workers = Worker.__table__  # Core, not ORM: it runs once per group commit of POST /jobs
    rows = session.execute(
        select(workers.c.queues).where(workers.c.status == WorkerStatus.ALIVE)
    ).scalars()
    return {queue for queues in rows for queue in queues}


def queue_warnings(queues: Iterable[str], served: set[str]) -> list[str]:
    """One line per queue no live worker serves: its jobs wait until a worker starts."""
    return [
        f"no live worker serves queue {queue}; the job waits until one does "
        f"(start one with `dgpo worker --queues {queue}`)"
        for queue in sorted(set(queues) - served)
    ]
