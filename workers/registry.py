"""The worker registry: what each worker process has and runs, for `GET /workers`.

Rows are written by the worker's main process (register, then a heartbeat on its timer);
the reconciler marks a worker dead when its heartbeat stops.
"""

import os
import socket

from sqlalchemy import select

from store.db import get_sessionmaker
from store.models import ACTIVE_STATUSES, Job, Worker, WorkerStatus, utcnow
from workers import gpus
from workers.settings import get_worker_settings


def _devices() -> list[str]:
    explicit = get_worker_settings().worker_gpus
    if explicit is not None:
        return [d.strip() for d in explicit.split(",") if d.strip()]
    return [str(i) for i in range(gpus.detect().count)]


def pin_slot(slot: int) -> list[str]:
    """Restrict this pool process to its slot's GPUs (before anything initialises CUDA)."""
    devices = gpus.slot_devices(slot, get_worker_settings().worker_slots, _devices())
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    os.environ["DGPO_WORKER_SLOT"] = str(slot)
    return devices


def register(worker_id: str, queues: list[str], slots: int) -> None:
    inventory = gpus.detect()
    now = utcnow()
    with get_sessionmaker()() as session, session.begin():
        worker = session.get(Worker, worker_id) or Worker(id=worker_id, started_at=now)
        worker.host = socket.gethostname()
        worker.gpu_type = inventory.gpu_type
        worker.gpu_count = inventory.count
        worker.gpu_memory_mb = inventory.memory_mb
        worker.queues = queues
        worker.slots = slots
        worker.status = WorkerStatus.ALIVE
        worker.running_job_ids = []
        worker.started_at = now
        worker.heartbeat_at = now
        session.add(worker)


def heartbeat(worker_id: str, queues: list[str], slots: int) -> None:
    """Refresh the heartbeat and the list of jobs this worker holds leases on."""
    with get_sessionmaker()() as session, session.begin():
        running = session.scalars(
            select(Job.id).where(Job.lease_owner == worker_id, Job.status.in_(ACTIVE_STATUSES))
        ).all()
        worker = session.get(Worker, worker_id)
        if worker is None:  # deleted by an operator while we were alive: come back
            register(worker_id, queues, slots)
            return
        worker.heartbeat_at = utcnow()
        worker.status = WorkerStatus.ALIVE
        worker.running_job_ids = list(running)


def deregister(worker_id: str) -> None:
    """A clean shutdown: the worker is gone now, not after the dead-worker timeout."""
    with get_sessionmaker()() as session, session.begin():
        worker = session.get(Worker, worker_id)
        if worker is not None:
            worker.status = WorkerStatus.DEAD
            worker.running_job_ids = []
