"""Response models of the API (requests are `trainer.spec` models: one schema, no copies)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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
    error: str | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    enqueued_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
    """Pass as `cursor` to get the next (older) page; None on the last page."""


class EventOut(_Out):
    id: int
    job_id: str
    ts: datetime
    kind: str
    message: str
    attempt: int
    data: dict[str, Any]


class MetricPoint(_Out):
    step: int
    values: dict[str, Any]
    ts: datetime


class MetricSeries(BaseModel):
    job_id: str
    total_points: int
    """Rows in the step range before downsampling."""
    points: list[MetricPoint]


class CheckpointOut(_Out):
    job_id: str
    step: int
    uri: str
    sha256: str
    size_bytes: int
    attempt: int
    created_at: datetime


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


class QueueOut(BaseModel):
    queues: list[QueueRow]
    workers_alive: int
    slots_alive: int


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
