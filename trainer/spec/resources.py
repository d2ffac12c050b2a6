"""What a job asks of the fleet: decides its queue and its GPU slot."""

from typing import Annotated, Self

from pydantic import Field, model_validator

from trainer.spec.base import SpecModel


class Resources(SpecModel):
    gpus: Annotated[int, Field(ge=0, le=64)] = 0
    """0 runs on a CPU worker. The total over all nodes."""
    nodes: Annotated[int, Field(ge=1, le=64)] = 1
    """Workers the job runs on at once (a gang, `docs/distributed.md`): each runs
    `gpus / nodes` ranks under torchrun, joined by its c10d rendezvous."""
    gpu_type: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] = "any"
    """e.g. `h100`, `a100`, or `any`; routes the job to queue `gpu.<type>`."""
    gpu_memory_mb: Annotated[int, Field(ge=1)] | None = None
    """Least memory per GPU (MiB); a worker that reports its GPUs' memory and has less
    never claims the job. None: any."""
    preemptible: bool = True
    """False: never preempted for another job (only an admin token may submit it); a
    drain with `--preempt` or a worker's SIGTERM still hands it back with a checkpoint."""

    @property
    def gpus_per_node(self) -> int:
        """What one member of the gang needs of its worker's slot."""
        return self.gpus // self.nodes

    @model_validator(mode="after")
    def _gpus_split_over_nodes(self) -> Self:
        if self.nodes > 1 and (self.gpus < self.nodes or self.gpus % self.nodes):
            raise ValueError(
                f"resources.nodes ({self.nodes}) must divide resources.gpus ({self.gpus}) "
                "with at least one GPU per node: each node runs gpus / nodes ranks"
            )
        return self

    @property
    def queue(self) -> str:
        """The Celery queue that serves this request."""
        return "cpu" if self.gpus == 0 else f"gpu.{self.gpu_type}"
