"""Response models of the API (requests are `trainer.spec` models: one schema, no copies)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from store.event_levels import Level, event_level
from store.job_data import SavedCheckpoint


def progress_percent(status: str, progress: float | None) -> float:
    """0-100; a succeeded job is 100 whether or not it reported steps (evals do not)."""
    return 100.0 if status == "succeeded" else 100.0 * (progress or 0.0)


def progress_text(
    status: str, progress: float | None, current_step: int | None, total_steps: int | None
) -> str:
    """The one way progress reads, in the API, the CLI and the dashboard: `45% (step 9/20)`."""
    steps = f" (step {current_step or 0}/{total_steps})" if total_steps else ""
    return f"{progress_percent(status, progress):.0f}%{steps}"


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_attribute_docstrings=True)


class ResultRef(BaseModel):
    """Where a job's product is: its newest checkpoint (the final one once it succeeded)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    step: int
    """The training step the checkpoint was saved at."""
    uri: str
    """Local path or fsspec URI of the HF-format checkpoint directory; an eval job's
    `model.checkpoint` can name it."""


FROM_SPEC = ("gpus", "gpu_type", "resources", "total_steps")
"""`JobOut` fields read from the spec, the one record of what the job asked for (the row
keeps no copy)."""


class JobErrorOut(BaseModel):
    """Why the job's last failed attempt failed; `code` is one of docs/operations.md's
    failure codes (`data_missing`, `killed`, ...), for clients to branch on."""

    code: str
    message: str
    attempt: int


ERROR_COLUMNS = ["error_code", "error_attempt"]
"""Row columns that, with `error` (the message), make `JobOut.error`."""


class JobOut(_Out):
    id: str
    kind: str
    status: str
    priority: int
    queue: str
    gpus: int
    gpu_type: str
    resources: dict[str, Any]
    metadata: dict[str, str] = Field(validation_alias="metadata_")
    owner: str
    """The principal whose token submitted it."""
    spec: dict[str, Any]
    idempotency_key: str | None
    attempt: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    progress: float
    eta_seconds: float | None
    current_step: int | None
    total_steps: int | None
    """A train job's steps; None for an eval job."""
    error: JobErrorOut | None
    """The last attempt failure (also while a retry waits or runs); None if none failed."""
    not_before: datetime | None
    """A retry waiting for its back-off: no worker starts it before this."""
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    enqueued_at: datetime | None
    warnings: list[str] = []
    """Set on submit: e.g. no live worker serves the job's queue (it waits for one)."""
    result: ResultRef | None = None
    """The job's newest checkpoint (step, uri), its final one once it succeeded; None
    until one is saved and for eval jobs (their scores are at `/jobs/{id}/results`)."""

    @model_validator(mode="before")
    @classmethod
    def _read_from_spec(cls, job: Any) -> Any:
        """A row (or the values of one) plus the fields its spec holds."""
        if not isinstance(job, dict):
            names = [f.validation_alias or n for n, f in cls.model_fields.items()]
            names += ERROR_COLUMNS
            job = {n: getattr(job, n) for n in names if n not in FROM_SPEC and hasattr(job, n)}
        spec = job["spec"]
        message = job.get("error")
        error = (
            message
            if not isinstance(message, str)
            else {
                "code": job.get("error_code") or "unknown",
                "message": message,
                "attempt": job.get("error_attempt") or job["attempt"],
            }
        )
        return {
            **job,
            "error": error,
            "gpus": spec["resources"]["gpus"],
            "gpu_type": spec["resources"]["gpu_type"],
            "resources": spec["resources"],
            "total_steps": spec.get("total_steps"),
        }

    @computed_field  # type: ignore[prop-decorator]
    @property
    def progress_text(self) -> str:
        """`progress` as people read it, e.g. `45% (step 9/20)`."""
        return progress_text(self.status, self.progress, self.current_step, self.total_steps)


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
    """Pass as `cursor` to get the next (older) page; None on the last page."""


class EventOut(_Out):
    id: int
    """Increasing per database; resume a poll (`after_id`) or a stream (`Last-Event-ID`)."""
    job_id: str
    ts: datetime
    kind: str
    """What happened: `status` (a transition; `data` has `from` and `to`), `checkpoint`,
    `eval`, `samples`, `enqueued`, ..."""
    message: str
    attempt: int
    """The attempt the event belongs to (0 before the first claim)."""
    data: dict[str, Any]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def level(self) -> Level:
        """`info`, `warning` (e.g. a checkpoint not saved, a retry) or `error` (the job
        failed)."""
        return event_level(self.kind, self.data)


class MetricPoint(_Out):
    step: int
    values: dict[str, Any]
    ts: datetime


class MetricSeries(BaseModel):
    job_id: str
    total_points: int
    """Rows in the step range before downsampling."""
    points: list[MetricPoint]


class CheckpointOut(SavedCheckpoint, _Out):
    """A checkpoint of a train job: the store's `SavedCheckpoint`, field for field."""


class ResultOut(_Out):
    job_id: str
    benchmark: str
    step: int | None
    k: int | None
    scores: dict[str, Any]
    per_problem: dict[str, Any]
    created_at: datetime


class QueueRow(BaseModel):
    queue: str
    gpu_type: str
    queued: int
    queued_gpus: int
    oldest_wait_seconds: float | None
    running: int
    running_gpus: int


class ShapeRow(BaseModel):
    queue: str
    gpu_type: str
    gpus: int
    """GPUs per job: one 8-GPU job and eight 1-GPU jobs are different rows."""
    nodes: int
    """Workers per job (`resources.nodes`): its GPUs are split evenly over them."""
    queued: int
    oldest_wait_seconds: float | None
    running: int
    fits_live_slot: bool
    """False: no live worker serving the queue has a slot this large (the jobs wait)."""


class QueueOut(BaseModel):
    queues: list[QueueRow]
    shapes: list[ShapeRow]
    """Demand by job shape (queue, GPU type, GPUs per job)."""
    largest_queued_gpus: int
    """The most GPUs a single queued job asks for."""
    workers_alive: int
    slots_alive: int
    warnings: list[str] = []
    """Waiting jobs that no live worker serves, or that no live slot is large enough for."""


class UsageRowOut(BaseModel):
    key: str
    """The job id, principal or queue the row sums."""
    attempts: int
    wall_seconds: float
    gpu_seconds: float


class UsageOut(BaseModel):
    by: str
    since: datetime
    until: datetime
    rows: list[UsageRowOut]


class WorkerOut(_Out):
    id: str
    host: str
    gpu_type: str
    gpu_count: int
    gpu_memory_mb: int
    queues: list[str]
    slots: int
    status: str
    running_job_ids: list[str]
    started_at: datetime
    heartbeat_at: datetime


class ErrorOut(BaseModel):
    detail: str
