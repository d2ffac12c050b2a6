"""The body of `POST /jobs` and of a spec file: a spec plus the job envelope.

The envelope (`kind`, `priority`, `max_attempts`, `metadata`) sits beside the spec's own fields, so
one YAML file serves `dgpo jobs submit`, `dgpo-train` and `dgpo-eval` alike.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, TypeAdapter

from trainer.spec.base import SpecModel
from trainer.spec.eval import EvalSpec
from trainer.spec.resources import Resources
from trainer.spec.train import TrainSpec

MetadataKey = Annotated[str, Field(min_length=1, max_length=64)]
MetadataValue = Annotated[str, Field(max_length=256)]


class _Envelope(SpecModel):
    priority: Annotated[int, Field(ge=0, le=9)] = 0
    """Higher runs first within its principal's jobs (fair share orders principals); the
    operator may cap it per principal (`max_priority`)."""
    max_attempts: Annotated[int, Field(ge=1, le=100)] | None = None
    """Attempts before the job fails (transient failures are retried with back-off); only
    lowers the operator's `DGPO_DEFAULT_MAX_ATTEMPTS`. None: the operator's."""
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=32)] = Field(
        default_factory=dict
    )
    """Free string labels kept with the job (`GET /jobs?metadata=key:value` filters on them;
    a schedule's `latest_checkpoint_of` finds train jobs by them)."""


ENVELOPE_FIELDS = frozenset({"kind", *_Envelope.model_fields})
"""What a job request holds beside its spec; the job row stores the spec without them."""


def without_envelope(data: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's part of a request body or spec file."""
    return {k: v for k, v in data.items() if k not in ENVELOPE_FIELDS}


class TrainJobRequest(TrainSpec, _Envelope):
    kind: Literal["train"]
    """Which spec follows: `train` (this one) or `eval`."""

    def spec(self) -> TrainSpec:
        return TrainSpec.model_validate(self.model_dump(exclude=ENVELOPE_FIELDS))


class EvalJobRequest(EvalSpec, _Envelope):
    kind: Literal["eval"]
    """Which spec follows: `eval` (this one) or `train`."""

    def spec(self) -> EvalSpec:
        return EvalSpec.model_validate(self.model_dump(exclude=ENVELOPE_FIELDS))


JobRequest = Annotated[TrainJobRequest | EvalJobRequest, Field(discriminator="kind")]
JOB_REQUEST_ADAPTER: TypeAdapter[TrainJobRequest | EvalJobRequest] = TypeAdapter(JobRequest)


def load_job_file(path: str | Path) -> TrainJobRequest | EvalJobRequest:
    """Read a YAML/JSON spec file (with `kind:`) into its validated request."""
    data = yaml.safe_load(Path(path).read_text())
    return JOB_REQUEST_ADAPTER.validate_python(data)


__all__ = [
    "ENVELOPE_FIELDS",
    "EvalJobRequest",
    "JobRequest",
    "Resources",
    "TrainJobRequest",
    "load_job_file",
    "without_envelope",
]
