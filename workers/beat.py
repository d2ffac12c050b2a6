"""The periodic schedule `dgpo beat` runs: only the reconciler."""

from typing import Any

from workers.routing import MAINTENANCE_QUEUE, RECONCILE_TASK
from workers.settings import WorkerSettings


def beat_schedule(settings: WorkerSettings) -> dict[str, dict[str, Any]]:
    return {
        "reconcile": {
            "task": RECONCILE_TASK,
            "schedule": settings.reconcile_every_s,
            # A reconcile older than its period is stale; the next one supersedes it.
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.reconcile_every_s},
        }
    }
