"""The worker registry's rows: what each worker process has and runs, for `GET /workers`.

A worker's main process registers and then heartbeats on its timer; the reconciler marks
a worker dead when its heartbeat stops.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from store import preemption
from store.db import get_sessionmaker
from store.errors import NotFound, Unprocessable
from store.models import ACTIVE_STATUSES, HEARTBEATING, Job, Worker, WorkerStatus, utcnow
from store.placement import serialize_claims


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
    is gone (deleted by an operator while the worker lived: it registers again). A
    draining worker stays draining until it holds no job, then reports `drained`."""
    with get_sessionmaker()() as session, session.begin():
        running = session.scalars(
            select(Job.id).where(Job.lease_owner == worker_id, Job.status.in_(ACTIVE_STATUSES))
        ).all()
        worker = session.get(Worker, worker_id)
        if worker is None:
            return False
        worker.heartbeat_at = utcnow()
        worker.running_job_ids = list(running)
        if worker.status == WorkerStatus.DEAD:
            worker.status = WorkerStatus.ALIVE  # declared dead during a pause: it is back
        elif worker.status != WorkerStatus.ALIVE:
            worker.status = WorkerStatus.DRAINING if running else WorkerStatus.DRAINED
    return True


def drain(worker_id: str, preempt: bool = False) -> Worker:
    """Stop `worker_id` claiming jobs; its running jobs finish (with `preempt`, each is
    preempted: it checkpoints at its next step boundary and goes back to the queue), then
    it reports `drained`. A draining or drained worker stays so (a later `preempt` still
    preempts what it runs); a dead one cannot be drained."""
    with get_sessionmaker()() as session, session.begin():
        serialize_claims(session)  # a claim in flight is committed, and seen below
        worker = session.get(Worker, worker_id, with_for_update=True)
        if worker is None:
            raise NotFound(f"no worker with id {worker_id!r}; list them with GET /workers")
        if worker.status == WorkerStatus.DEAD:
            raise Unprocessable(
                f"worker {worker_id} is dead (no heartbeat): there is nothing to drain",
                ("path", "worker_id"),
            )
        running = session.scalars(
            select(Job.id).where(Job.lease_owner == worker_id, Job.status.in_(ACTIVE_STATUSES))
        ).all()
        if worker.status == WorkerStatus.ALIVE:
            worker.running_job_ids = list(running)
            worker.status = WorkerStatus.DRAINING if running else WorkerStatus.DRAINED
        if preempt:
            preemption.request(session, running, "drain", f"worker {worker_id} drains")
        session.flush()
        session.expunge(worker)
    return worker


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
                .where(Worker.status.in_(HEARTBEATING), Worker.heartbeat_at < silent_since)
                .values(status=WorkerStatus.DEAD, running_job_ids=[])
                .returning(Worker.id)
                .execution_options(synchronize_session=False)
            ).all()
        )
