"""Submit-time check that needs the database: an eval of a checkpoint that cannot exist is
refused at once (422 naming the field), not on the worker."""

from typing import Any, NoReturn

from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from store import job_data, jobs
from store.errors import NotFound
from store.models import TERMINAL_STATUSES
from trainer.spec import EvalJobRequest, TrainJobRequest


def check_checkpoint_ref(
    session: Session, request: TrainJobRequest | EvalJobRequest, owner: str | None
) -> None:
    """An eval's `model.checkpoint` must name a train job that `owner` can see (None: an
    admin, who sees all) and, for a numbered step, one of its checkpoints; `latest` of an
    unfinished job is fine (it may checkpoint yet). Another owner's job reads as missing."""
    ref = request.model.checkpoint if isinstance(request, EvalJobRequest) else None
    if ref is None:
        return
    try:
        job = jobs.get_job(session, ref.job_id, owner=owner)
    except NotFound:
        _refuse("job_id", ref.job_id, f"no job with id {ref.job_id!r}")
    if job.kind != "train":
        _refuse("job_id", ref.job_id, f"job {job.id} is an eval job; name a train job")
    steps = sorted(c.step for c in job_data.checkpoints(session, job.id))
    if ref.step == "latest":
        if not steps and job.status in TERMINAL_STATUSES:
            _refuse("step", ref.step, f"train job {job.id} ended {job.status} with no checkpoint")
    elif ref.step not in steps:
        have = f"its checkpoints are at steps {steps}" if steps else "it has no checkpoint yet"
        _refuse(
            "step", ref.step, f"train job {job.id} has no checkpoint at step {ref.step}; {have}"
        )


def _refuse(field: str, value: Any, message: str) -> NoReturn:
    raise RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("body", "eval", "model", "checkpoint", field),
                "msg": message,
                "input": value,
            }
        ]
    )
