"""Worker-side knobs (env prefix `DGPO_`): lease timing, reconciler thresholds, batching.

Kept apart from the service settings because only worker and beat processes read them;
beside them in `config/` because each must know the other's names (`config.env`).
"""

from functools import lru_cache

from pydantic import Field, model_validator

from config.env import DgpoSettings


class WorkerSettings(DgpoSettings):
    lease_s: float = Field(default=60.0, gt=0)
    """How long a claim lives without a heartbeat; a crashed worker's job waits this long."""
    lease_renew_s: float = Field(default=10.0, gt=0)
    """Heartbeat period of a running job's lease (must be well under `lease_s`)."""
    worker_heartbeat_s: float = Field(default=10.0, gt=0)
    worker_dead_after_s: float = Field(default=60.0, gt=0)
    """A worker whose heartbeat is older than this is marked dead by the reconciler."""
    requeue_lost_after_s: float = Field(default=300.0, ge=0)
    """On a broker that cannot be inspected (the embedded ones), a queued job dispatched
    longer ago than this is re-published (its message may have been lost). On Redis the
    reconciler sees which messages are missing and re-sends exactly those, at once."""
    reconcile_every_s: float = Field(default=30.0, gt=0)
    visibility_timeout_s: int = Field(default=3600, gt=0)
    """Redis redelivers unacked messages after this; the lease makes redelivery a no-op."""
    metrics_batch: int = Field(default=16, ge=1)
    """Steps buffered before one metrics upsert (flushed earlier at checkpoints and end)."""
    metrics_flush_s: float = Field(default=5.0, ge=0)
    stop_poll_s: float = Field(default=1.0, ge=0)
    """How often `should_stop()` reads the job status (cancel latency vs. queries)."""
    cancel_grace_s: float = Field(default=30.0, ge=0)
    """How long a cancelled trainer may take to reach a step boundary and write its final
    checkpoint before its process group is terminated."""
    kill_grace_s: float = Field(default=5.0, ge=0)
    """Between SIGTERM and SIGKILL when a process group is terminated."""
    report_poll_s: float = Field(default=0.2, gt=0)
    """How often the supervisor relays the child's reports and checks for a cancel."""
    child_memory_limit_mb: int | None = Field(default=None, ge=64)
    """RLIMIT_AS of each attempt's processes: a runaway allocation fails the attempt
    with a cause that says so instead of waking the host's OOM killer. Address space, not
    resident memory: for CPU workers (and tests) only, CUDA reserves far more than it uses."""
    handback_delay_s: float = Field(default=2.0, ge=0)
    """A slot that can run nothing of the job its message names (too few GPUs, principal
    at its quota) waits this long before sending the message back, so that another slot
    takes it instead of this one again at once."""
    spare_child: bool = True
    """Keep one attempt process per slot started ahead, its imports of torch,
    transformers and the trainer done (`workers.spare_child`), so that a job's trainer
    starts without waiting for them (9-19 s on 2 shared cores). Costs one idle
    process per slot (~450 MB resident); each runs one attempt and exits with it."""
    gang_start_s: float = Field(default=60.0, gt=0)
    """How long a multi-node job's reserved member may take to start on its worker (and
    torchrun's rendezvous to form) before the attempt fails for the whole gang."""
    worker_address: str | None = None
    """Where the other workers of a multi-node job reach this one (the c10d endpoint of a
    gang whose member 0 runs here); default: its host name."""
    worker_slots: int = Field(default=1, ge=1)
    """Set by `dgpo worker --slots`; each pool process pins to its share of the GPUs."""
    worker_gpus: str | None = None
    """Comma-separated GPU indices this worker may use (default: all detected)."""
    child_threads: int | None = Field(default=None, ge=1)
    """CPU threads (`OMP_NUM_THREADS`) of each attempt process. Default: the cores this
    worker may use divided among its slots and a torchrun group's ranks (`workers.cpus`)."""

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> "WorkerSettings":
        if self.lease_renew_s >= self.lease_s:
            raise ValueError(
                f"DGPO_LEASE_RENEW_S ({self.lease_renew_s}) must be below DGPO_LEASE_S "
                f"({self.lease_s}) or every running job would lose its lease"
            )
        return self


@lru_cache
def get_worker_settings() -> WorkerSettings:
    return WorkerSettings()
