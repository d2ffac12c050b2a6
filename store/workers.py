"""The worker registry's rows: what each worker process has and runs, for `GET /workers`.

A worker's main process registers and then heartbeats on its timer; the reconciler marks
a worker dead when its heartbeat stops.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from store.db import get_sessionmaker
from store.models import ACTIVE_STATUSES, Job, Worker, WorkerStatus, utcnow


@dataclass(frozen=True)
class Machine:
    """What a worker serves and with what: its host, accelerators, queues and slots."""

    host: str
    gpu_type: str
    gpu_count: int
    gpu_memory_mb: int
    queues: list[str]
    slots: int


def register(worker_id: str, machine: Machine) -> None:
    """The worker is alive, holds no job yet, and has `machine` (re-registering resets it)."""
    now = utcnow()
    with get_sessionmaker()() as session, session.begin():
        worker = session.get(Worker, worker_id) or Worker(id=worker_id, started_at=now)
        worker.host = machine.host
        worker.gpu_type = machine.gpu_type
        worker.gpu_count = machine.gpu_count
        worker.gpu_memory_mb = machine.gpu_memory_mb
        worker.queues = machine.queues
        worker.slots = machine.slots
        worker.status = WorkerStatus.ALIVE
        worker.running_job_ids = []
        worker.started_at = now
        worker.heartbeat_at = now
        session.add(worker)


def heartbeat(worker_id: str) -> bool:
    """Refresh the heartbeat and the jobs this worker holds leases on; False when its row
    is gone (deleted by an operator while the worker lived: it registers again)."""
    with get_sessionmaker()() as session, session.begin():
        running = session.scalars(
            select(Job.id).where(Job.lease_owner == worker_id, Job.status.in_(ACTIVE_STATUSES))
        ).all()
        worker = session.get(Worker, worker_id)
        if worker is None:
            return False
        worker.heartbeat_at = utcnow()
        worker.status = WorkerStatus.ALIVE
        worker.running_job_ids = list(running)
    return True


def deregister(worker_id: str) -> None:
    """A clean shutdown: the worker is gone now, not after the dead-worker timeout."""
    with get_sessionmaker()() as session, session.begin():
        worker = session.get(Worker, worker_id)
        if worker is not None:
            worker.status = WorkerStatus.DEAD
            worker.running_job_ids = []


def mark_dead(silent_since: datetime) -> list[str]:
    """Mark dead every live worker whose last heartbeat is older than `silent_since`;
    their ids."""
    with get_sessionmaker()() as session, session.begin():
        return list(
            session.scalars(
                update(Worker)
                .where(Worker.status == WorkerStatus.ALIVE, Worker.heartbeat_at < silent_since)
                .values(status=WorkerStatus.DEAD, running_job_ids=[])
                .returning(Worker.id)
                .execution_options(synchronize_session=False)
            ).all()
        )
