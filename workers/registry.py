"""The worker registry, worker side: this machine's GPUs, pinned per slot, and its row
(`store.workers`) registered, heartbeated and deregistered by the main process."""

import logging
import os
import socket

from config.worker_settings import get_worker_settings
from store import workers as worker_rows
from store.errors import NotFound
from store.workers import Machine
from workers import gpus

log = logging.getLogger(__name__)


def _devices() -> list[str]:
    explicit = get_worker_settings().worker_gpus
    if explicit is not None:
        return [d.strip() for d in explicit.split(",") if d.strip()]
    return [str(i) for i in range(gpus.detect().count)]


def pin_slot(slot: int) -> list[str]:
    """Restrict this pool process to its slot's GPUs (before anything initialises CUDA)."""
    devices = gpus.slot_devices(slot, get_worker_settings().worker_slots, _devices())
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    os.environ[SLOT_ENV] = str(slot)
    return devices


SLOT_ENV = "DGPO_WORKER_SLOT"


def slot_gpus() -> int:
    """How many GPUs this slot holds: those `pin_slot` gave it, else an equal share of the
    worker's (a process that was never pinned)."""
    if SLOT_ENV in os.environ:
        return len([d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d])
    return len(_devices()) // get_worker_settings().worker_slots


def register(worker_id: str, queues: list[str], slots: int) -> None:
    inventory = gpus.detect()
    machine = Machine(
        host=socket.gethostname(),
        gpu_type=inventory.gpu_type,
        gpu_count=len(_devices()),
        gpu_memory_mb=inventory.memory_mb,
        queues=queues,
        slots=slots,
    )
    worker_rows.register(worker_id, machine)


def heartbeat(worker_id: str, queues: list[str], slots: int) -> None:
    """Refresh the heartbeat; a worker whose row was deleted registers again."""
    if not worker_rows.heartbeat(worker_id):
        register(worker_id, queues, slots)


def hand_jobs_back(worker_id: str) -> None:
    """Drain this worker and preempt what it runs (it is shutting down); never raises."""
    try:
        worker = worker_rows.drain(worker_id, preempt=True)
    except NotFound:
        return  # `dgpo beat`'s worker serves no jobs and never registered
    except Exception:
        log.exception("worker %s: could not hand its jobs back; their leases expire", worker_id)
        return
    log.info("worker %s shuts down: preempting %s", worker_id, worker.running_job_ids or "none")


def deregister(worker_id: str) -> None:
    """A clean shutdown: the worker is gone now, not after the dead-worker timeout."""
    worker_rows.deregister(worker_id)
