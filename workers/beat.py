"""The periodic schedule `dgpo beat` runs: the reconciler and the schedule ticker."""

from typing import Any

from config.worker_settings import WorkerSettings
from workers.routing import MAINTENANCE_QUEUE, RECONCILE_TASK
from workers.schedules import FIRE_SCHEDULES_TASK, TICK_S


def beat_schedule(settings: WorkerSettings) -> dict[str, dict[str, Any]]:
    return {
        "reconcile": {
            "task": RECONCILE_TASK,
            "schedule": settings.reconcile_every_s,
            # A reconcile older than its period is stale; the next one supersedes it.
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.reconcile_every_s},
        },
        "fire-schedules": {
            "task": FIRE_SCHEDULES_TASK,
            "schedule": TICK_S,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": TICK_S},
        },
    }
