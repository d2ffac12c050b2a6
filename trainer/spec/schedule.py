"""The body of `POST /schedules`: a cron rule that evaluates a target and compares it.

The eval part is `EvalSpec` itself minus the model (the target names the model at each
run), so a schedule validates exactly like an eval job: one schema, no copies.
"""

from typing import Annotated, Any, Literal, Self

from pydantic import Field, HttpUrl, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from trainer.spec.base import PATH_MAX, SpecModel
from trainer.spec.eval import EvalModel, EvalSpec


def _check_cron(expression: str) -> str:
    from croniter import croniter  # lazy: only schedule validation needs it

    if not croniter.is_valid(expression):
        raise ValueError(
            f"{expression!r} is not a cron expression; use 5 fields "
            "'minute hour day-of-month month day-of-week', e.g. '0 3 * * *' (03:00 daily)"
        )
    try:  # `is_valid` passes dates that never come, e.g. '0 0 30 2 *' (30 February)
        croniter(expression).get_next(float)
    except (ValueError, OverflowError):
        raise ValueError(
            f"{expression!r} never fires (no such date); fix its day or month"
        ) from None
    return expression


CronExpression = Annotated[str, Field(min_length=1, max_length=255)]


class ScheduleEvalSpec(EvalSpec):
    """An `EvalSpec` without `model`: the schedule's target picks the model per run."""

    model: SkipJsonSchema[None] = Field(default=None, exclude=True)  # type: ignore[assignment]

    @field_validator("model", mode="before")
    @classmethod
    def _no_model(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("a schedule's `target` names the model; remove eval.model")
        return None

    def with_model(self, model: EvalModel) -> EvalSpec:
        return EvalSpec.model_validate({**self.model_dump(), "model": model})


class LatestCheckpointOf(SpecModel):
    """The newest checkpoint of the newest succeeded train job carrying this metadata."""

    metadata: dict[
        Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=256)]
    ] = Field(min_length=1, max_length=32)
    """Labels the train job must carry (all of them)."""


class ScheduleTarget(SpecModel):
    """Exactly one of `model_path` or `latest_checkpoint_of`."""

    model_path: str | None = Field(default=None, min_length=1, max_length=PATH_MAX)
    """A fixed model: a Hugging Face id or a local directory in HF format."""
    latest_checkpoint_of: LatestCheckpointOf | None = None
    """Follow a training series: each run scores its newest checkpoint."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.model_path is None) == (self.latest_checkpoint_of is None):
            raise ValueError("give exactly one of target.model_path or target.latest_checkpoint_of")
        return self


class JobBaseline(SpecModel):
    """A fixed eval job to compare every run with."""

    job_id: str = Field(min_length=1, max_length=36)
    """Id of that eval job."""


Baseline = Literal["previous"] | JobBaseline
"""`"previous"`: the latest earlier run of the same schedule whose eval job succeeded."""

Threshold = Annotated[float, Field(ge=0.0, le=1.0)]
"""Minimum absolute change in accuracy to call a significant change a regression."""


class ScheduleRequest(SpecModel):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00]*$")
    """Display name of the schedule."""
    cron: CronExpression
    """When to run: 5 fields 'minute hour day-of-month month day-of-week', UTC."""
    eval: ScheduleEvalSpec
    """The eval job each run submits, without its model."""
    target: ScheduleTarget
    """The model each run evaluates."""
    baseline: Baseline = "previous"
    """What each run is compared with: `previous` or a fixed eval job."""
    threshold: Threshold = 0.0
    """A significant drop in accuracy larger than this is a regression."""
    webhook_url: HttpUrl | None = None
    """POSTed (JSON) when a run is a regression."""
    enabled: bool = True
    """A disabled schedule keeps its history but starts no runs."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return _check_cron(value)


class SchedulePatch(SpecModel):
    """Fields of a schedule that may change; absent fields stay as they are."""

    enabled: bool | None = None
    """Pause (false) or resume (true) the schedule."""
    cron: CronExpression | None = None
    """New cron expression."""
    threshold: Threshold | None = None
    """New regression threshold."""
    webhook_url: HttpUrl | None = None
    """Send null to remove the webhook."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)


__all__ = [
    "Baseline",
    "JobBaseline",
    "LatestCheckpointOf",
    "ScheduleEvalSpec",
    "SchedulePatch",
    "ScheduleRequest",
    "ScheduleTarget",
]
