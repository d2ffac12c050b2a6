"""The database schema as SQLAlchemy 2.0 typed models (Alembic migrations mirror it).

Postgres is the truth for every job; the broker only carries "run job X". Columns the
workers need for leases (owner, expiry, fencing token, attempt) and for lost-message
detection (`enqueued_at`) live on the job row so one UPDATE can claim it.
"""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSONB on Postgres (containment queries, GIN index), plain JSON text elsewhere."""

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite autoincrements only an INTEGER PRIMARY KEY."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(UTC)")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.RUNNING, JobStatus.CANCELLING})


SCHEMA_REVISION = "0009"
"""The Alembic revision these models match; `/readyz` refuses any other database."""

DEFAULT_PRINCIPAL = "default"
"""The principal of tokens created without one, and of rows older than owners (0002)."""


class TokenScope(StrEnum):
    READ = "read"
    SUBMIT = "submit"
    ADMIN = "admin"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    spec: Mapped[dict[str, Any]]
    """The validated spec, without the envelope (kind, priority, metadata): the one record
    of what the job asked for, `resources` and `total_steps` included."""
    priority: Mapped[int] = mapped_column(default=0)
    queue: Mapped[str] = mapped_column(String(64))
    """The routing key the claim and fleet queries index: derived once, at insert, from
    `spec.resources` (`trainer.spec.Resources.queue`): cpu, gpu.any, gpu.h100, ..."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    owner: Mapped[str] = mapped_column(
        String(255), default=DEFAULT_PRINCIPAL, server_default=DEFAULT_PRINCIPAL
    )
    """The principal whose token submitted it; only it (and admins) can see the job."""
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    """Unique per owner: two principals using the same key get a job each."""
    request_hash: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    """Bumped on every claim; a worker's writes must match it (stale workers lose)."""
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    current_step: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    """The last attempt failure's message; with `error_code` and `error_attempt` the API's
    `error` object."""
    error_code: Mapped[str | None] = mapped_column(String(32))
    """Its class (`workers.failure_codes`): `data_missing`, `killed`, ..."""
    error_attempt: Mapped[int | None]
    not_before: Mapped[datetime | None]
    """A re-queued transient failure waits for its back-off: nothing claims it earlier."""
    attempt_started_at: Mapped[datetime | None]
    """When the current (or last) attempt was claimed; its usage runs from here."""
    last_failed_on: Mapped[str | None] = mapped_column(String(255))
    """The worker of the last failed attempt; its retry prefers another one."""
    preempt_requested_at: Mapped[datetime | None]
    """This attempt was asked to give its slot up (`store.preemption`): it stops at its
    next step boundary and goes back to the queue."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    enqueued_at: Mapped[datetime | None]
    """When its run message was last handed to the broker; a new job is inserted with it
    set, and None means a publish failed or it was re-queued (`store/dispatch.py`)."""

    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        Index("ix_jobs_kind_created", "kind", "created_at", "id"),
        Index("ix_jobs_owner_kind_created", "owner", "kind", "created_at", "id"),
        Index("ix_jobs_status_queue", "status", "queue"),
        Index("ix_jobs_lease_expires", "lease_expires_at"),
        Index("ix_jobs_metadata_gin", "metadata", postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
    )


class JobEvent(Base):
    """Append-only log of a job: transitions, milestones, errors."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(default=0)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AttemptUsage(Base):
    """One ended attempt's time on its slot: what `GET /usage` and fair share add up."""

    __tablename__ = "attempt_usage"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    owner: Mapped[str] = mapped_column(String(255))
    queue: Mapped[str] = mapped_column(String(64))
    gpu_type: Mapped[str] = mapped_column(String(32))
    gpus: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    """The status the attempt left the job in: succeeded, failed, cancelled or queued."""
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    wall_seconds: Mapped[float] = mapped_column(Float)
    gpu_seconds: Mapped[float] = mapped_column(Float)
    """`wall_seconds` times the GPUs the job held (0 for a CPU job)."""

    __table_args__ = (
        Index("ix_attempt_usage_ended", "ended_at"),
        Index("ix_attempt_usage_job", "job_id"),
    )


class MemberState(StrEnum):
    PENDING = "pending"
    """Placed on its worker, whose next free slot starts it."""
    RUNNING = "running"
    DONE = "done"
    """Its torchrun exited 0; the gang's job ends when every member is done."""


class GangMember(Base):
    """One member of a multi-node job's current attempt (`store.gangs`): its worker, its own
    lease, and for member 0 the c10d rendezvous endpoint. Replaced at every claim."""

    __tablename__ = "gang_members"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    member: Mapped[int] = mapped_column(primary_key=True)
    attempt: Mapped[int]
    worker: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_gang_members_worker_state", "worker", "state"),)


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int]
    values: Mapped[dict[str, Any]]
    ts: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_metrics_job_step"),)


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int]
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_checkpoints_job_step"),)


class EvalResult(Base):
    """Scores of one benchmark; `step` is the training step for periodic evals, else None."""

    __tablename__ = "eval_results"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    benchmark: Mapped[str] = mapped_column(String(64))
    step: Mapped[int | None]
    k: Mapped[int | None]
    scores: Mapped[dict[str, Any]]
    per_problem: Mapped[dict[str, Any]]
    """{"problems": [{"problem_id", "num_samples", "num_correct", "samples"?}, ...]}."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "job_id",
            "benchmark",
            "step",
            name="uq_eval_results_job_benchmark_step",
            postgresql_nulls_not_distinct=True,
        ),
    )


class WorkerStatus(StrEnum):
    ALIVE = "alive"
    DRAINING = "draining"
    """An operator asked it to stop claiming; its running jobs finish."""
    DRAINED = "drained"
    """Draining and holding no job: it may be stopped without losing work."""
    DEAD = "dead"


HEARTBEATING = frozenset({WorkerStatus.ALIVE, WorkerStatus.DRAINING, WorkerStatus.DRAINED})
"""The statuses of a worker that still heartbeats (only an alive one claims)."""


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    gpu_type: Mapped[str] = mapped_column(String(32), default="cpu")
    gpu_count: Mapped[int] = mapped_column(default=0)
    gpu_memory_mb: Mapped[int] = mapped_column(default=0)
    queues: Mapped[list[str]] = mapped_column(JSONType, default=list)
    slots: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(16), default=WorkerStatus.ALIVE)
    running_job_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class Schedule(Base):
    """A cron rule that submits an eval job and compares it with a baseline."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(
        String(255), default=DEFAULT_PRINCIPAL, server_default=DEFAULT_PRINCIPAL
    )
    """The principal that created it; its eval jobs belong to the same principal."""
    name: Mapped[str] = mapped_column(String(255))
    """Unique per owner."""
    cron: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]]
    """The eval spec (without the model, which the target resolves at run time)."""
    target: Mapped[dict[str, Any]]
    baseline: Mapped[dict[str, Any]]
    threshold: Mapped[float] = mapped_column(Float, default=0.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    webhook_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("owner", "name", name="uq_schedules_owner_name"),
        Index("ix_schedules_due", "enabled", "next_run_at"),
    )


class ScheduleRun(Base):
    __tablename__ = "schedule_runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    verdict: Mapped[str | None] = mapped_column(String(32))
    """pass | regression | improvement; None until the eval job finished and compared."""
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token; only its sha256 is stored, the secret is shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(
        String(255), default=DEFAULT_PRINCIPAL, server_default=DEFAULT_PRINCIPAL
    )
    """The user or team the token acts for: it owns what the token creates."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Study(Base):
    """A comparison of training recipes (`POST /studies`); its members are the jobs whose
    metadata carries `study: <id>` (`trainer.spec.study.tags_of`)."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]]
    """The validated `StudyRequest`."""
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    """Said at submit (e.g. arms that cannot differ on-policy); kept for the report."""
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_studies_owner_idempotency_key"),
        Index("ix_studies_owner_created", "owner", "created_at", "id"),
    )
