"""What the operator decides about sharing the fleet: per-principal quotas and fair-share
weights, and how failed attempts are retried. Read by the API (submit limits) and by every
slot (claim order, retries); set through `DGPO_*` settings (`config.settings`).

The vocabulary follows Kueue where it fits: a principal's `nominal_gpus` is its
guaranteed share of a GPU type, which it may exceed by *borrowing* idle capacity while no
other principal waits for it; its `weight` scales its fair share.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

GpuType = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


class PrincipalPolicy(BaseModel):
    """Limits and share of one principal (a user or team that owns tokens and jobs)."""

    model_config = ConfigDict(extra="forbid")

    weight: Annotated[float, Field(gt=0)] = 1.0
    """Fair-share weight: at equal weights principals get equal service; weight 2 gets twice
    the GPU time of weight 1 while both wait."""
    nominal_gpus: dict[GpuType, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    """Concurrent GPUs per requested `resources.gpu_type` (`any` counts jobs that asked for
    any type); a type not named is not limited."""
    can_borrow: bool = True
    """Past `nominal_gpus`, a claim still goes ahead while no other principal's job waits
    for that slot (Kueue's borrowing within a cohort); False makes the quota a hard cap."""
    max_queued_jobs: Annotated[int, Field(ge=0)] | None = None
    """Queued jobs at once; a submission past it is refused (429). None: no limit."""
    max_priority: Annotated[int, Field(ge=0, le=9)] = 9
    """Highest `priority` this principal's submit tokens may ask for (admin tokens: any)."""


class GroupPolicy(BaseModel):
    """Limits a group of principals shares (a Kueue cohort's quota, a Slurm account's),
    on top of each member's own: a department over its teams, say."""

    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(min_length=1)
    """The principals it holds; a principal belongs to at most one group."""
    nominal_gpus: dict[GpuType, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    """Concurrent GPUs per GPU type of all members together, as a principal's."""
    can_borrow: bool = True
    """Past `nominal_gpus`, a member's claim still goes ahead while nobody within their
    quotas waits for that slot; False makes it a hard cap."""
    max_queued_jobs: Annotated[int, Field(ge=0)] | None = None
    """Queued jobs of all members at once; a submission past it is refused (429)."""


class RetryPolicy(BaseModel):
    """How a failed attempt is retried, by its failure code (`workers.failure_codes`)."""

    model_config = ConfigDict(extra="forbid")

    backoff_s: Annotated[float, Field(ge=0)] = 30.0
    """Wait before the 2nd attempt; each later retry waits `backoff_factor` times longer."""
    backoff_factor: Annotated[float, Field(ge=1)] = 2.0
    backoff_max_s: Annotated[float, Field(ge=0)] = 900.0
    fail_fast: list[str] = Field(
        default_factory=lambda: [
            "spec_invalid",
            "data_missing",
            "model_missing",
            "dependency_missing",
            "gpus_unavailable",
            "disk_full",
        ]
    )
    """Codes that fail the job at once: retrying cannot help (the same spec, data and
    image fail the same way everywhere)."""

    def backoff(self, attempt: int) -> float:
        """Seconds before the retry that follows failed attempt number `attempt` (1-based)."""
        return min(self.backoff_max_s, self.backoff_s * self.backoff_factor ** (attempt - 1))


class PreemptionPolicy(BaseModel):
    """When a waiting job may take a running job's slot (`store.preemption`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """False: no running job is ever preempted for a waiting one (a drain with `--preempt`
    and a worker's SIGTERM still hand their jobs back with a checkpoint)."""
    fair_share: bool = True
    """Also preempt for a principal below its fair share or within its `nominal_gpus`
    while the running job's principal borrows; False: only for a higher priority."""
