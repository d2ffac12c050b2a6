"""What the GPU-fleet scheduler reads: demand per queue and GPU type, and the workers."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import ACTIVE_STATUSES, Job, JobStatus, Worker, WorkerStatus, utcnow
from service.schemas import QueueOut, QueueRow
from service.submit_checks import queue_warnings, served_queues


def queue_summary(session: Session) -> QueueOut:
    """Queued jobs and requested GPUs per (queue, GPU type), oldest wait, running load."""
    active = [JobStatus.QUEUED, *ACTIVE_STATUSES]
    rows = session.execute(
        select(
            Job.queue,
            Job.gpu_type,
            Job.status,
            func.count(),
            func.coalesce(func.sum(Job.gpus), 0),
            func.min(Job.queued_at),
        )
        .where(Job.status.in_(active))
        .group_by(Job.queue, Job.gpu_type, Job.status)
    ).all()
    now = utcnow()
    table: dict[tuple[str, str], QueueRow] = {}
    for queue, gpu_type, status, count, gpus, oldest in rows:
        row = table.setdefault(
            (queue, gpu_type),
            QueueRow(
                queue=queue,
                gpu_type=gpu_type,
                queued=0,
                queued_gpus=0,
                oldest_wait_seconds=None,
                running=0,
                running_gpus=0,
            ),
        )
        if status == JobStatus.QUEUED:
            row.queued, row.queued_gpus = count, int(gpus)
            row.oldest_wait_seconds = _age(now, oldest)
        else:
            row.running += count
            row.running_gpus += int(gpus)
    alive = session.execute(
        select(func.count(), func.coalesce(func.sum(Worker.slots), 0)).where(
            Worker.status == WorkerStatus.ALIVE
        )
    ).one()
    waiting = [row.queue for row in table.values() if row.queued]
    return QueueOut(
        queues=sorted(table.values(), key=lambda r: (r.queue, r.gpu_type)),
        workers_alive=alive[0],
        slots_alive=int(alive[1]),
        warnings=queue_warnings(waiting, served_queues(session)),
    )


def _age(now: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    if then.tzinfo is None:  # aggregate results bypass the column type on SQLite
        then = datetime.fromisoformat(str(then)).replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


def list_workers(session: Session, status: str | None) -> Sequence[Worker]:
    stmt = select(Worker).order_by(Worker.id)
    if status is not None:
        stmt = stmt.where(Worker.status == status)
    return session.scalars(stmt).all()
