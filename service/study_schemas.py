"""Response models of `/studies` (the request is `trainer.spec.study.StudyRequest`)."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class StudyStatus(StrEnum):
    QUEUED = "queued"
    """No member has started."""
    RUNNING = "running"
    """Some member is running, or some finished while others wait."""
    SUCCEEDED = "succeeded"
    """Every train and eval job succeeded."""
    INCOMPLETE = "incomplete"
    """Everything that will run has ended, and some member failed or was cancelled: the
    report compares what it can and says what it could not."""
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class PendingStatus(StrEnum):
    """The status of an eval that is not a job yet."""

    PENDING = "pending"
    """Submitted once its train job succeeds."""
    SKIPPED = "skipped"
    """Its train job failed or was cancelled (or the study was): it will not run."""


class _Doc(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


class StudyMemberOut(_Doc):
    arm: str
    seed: int
    role: Literal["train", "eval"]
    """The (arm, seed)'s train job, or the eval of its final checkpoint."""
    job_id: str | None
    """None for an eval not submitted yet (see `status`)."""
    status: str
    """The job's status, or `pending`/`skipped` for an eval not submitted."""
    progress: float
    """0-1; a finished job is 1."""
    error_code: str | None = None
    """The failure code of a member that failed (docs/operations.md)."""


class StudyOut(_Doc):
    id: str
    name: str
    owner: str
    """The principal whose token submitted it."""
    status: StudyStatus
    progress: float
    """0-1 over every planned member (train and eval jobs)."""
    arms: list[str]
    """In the order given; members expand arms, then seeds."""
    baseline: str
    seeds: list[int]
    incomplete_arms: list[str]
    """Arms with a member that failed or was cancelled (retries exhausted)."""
    members: list[StudyMemberOut]
    """One train and one eval per (arm, seed), arms then seeds: the deterministic expansion."""
    warnings: list[str]
    """Said at submit, e.g. arms that differ only in the policy loss on an on-policy base."""
    spec: dict[str, Any]
    """The validated study request."""
    created_at: datetime
    cancelled_at: datetime | None


class StudyPage(BaseModel):
    items: list[StudyOut]
