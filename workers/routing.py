"""Queue names for a GPU fleet: `gpu.<type>` per GPU type, `gpu.any`, `cpu`.

A job's `resources` pick its queue (`trainer.spec.Resources.queue`); a worker consumes
the queues its hardware can serve, e.g. an H100 host `gpu.h100,gpu.any`.
"""

CPU_QUEUE = "cpu"
ANY_GPU_QUEUE = "gpu.any"
MAINTENANCE_QUEUE = "dgpo.maintenance"
"""Served only by `dgpo beat`, so the reconciler never waits behind a training job."""
RECONCILE_TASK = "dgpo.reconcile"


def queues_for(gpu_type: str) -> list[str]:
    """The queues a worker with `gpu_type` GPUs (or `cpu`) should consume by default."""
    if gpu_type == "cpu":
        return [CPU_QUEUE]
    return [f"gpu.{gpu_type}", ANY_GPU_QUEUE]


def member_queue(worker: str) -> str:
    """The queue only `worker` consumes: wake-ups for the gang members reserved on it
    (`workers.gang`). Not one of the queues it registers as serving."""
    return f"dgpo.worker.{worker}"


def serves_jobs(queues: list[str]) -> bool:
    """True for a job worker, False for the maintenance-only process of `dgpo beat`."""
    return any(q == CPU_QUEUE or q.startswith("gpu.") for q in queues)
