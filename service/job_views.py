"""The API's view of job rows: `JobOut` plus what other tables say (the result pointer)."""

from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.schemas import JobOut, ResultRef
from store import job_data
from store.models import Job


def with_results(session: Session, rows: Sequence[Job], *, sees_hosts: bool) -> list[JobOut]:
    """`rows` as `JobOut`s, each with its result pointer (one query for them all); worker
    host names (`lease_owner`) only for a token that `sees_hosts` (admins)."""
    newest = job_data.newest_checkpoints(session, [row.id for row in rows])
    out = [JobOut.model_validate(row) for row in rows]
    for job in out:
        if not sees_hosts:
            job.lease_owner = None
        if job.id in newest:
            step, uri = newest[job.id]
            job.result = ResultRef(step=step, uri=uri)
    return out
