"""A study's evals: submitted when a member train job succeeds (the worker's hook), and by
beat for any the hook missed (a worker that died between finishing and submitting).

Submitting is idempotent (`store.studies.submit_eval` uses the member's key) and never
raises here: a failure is logged and beat submits it on its next tick.
"""

import logging

from store import studies
from store.db import get_sessionmaker

log = logging.getLogger(__name__)


def submit_eval(train_job_id: str) -> None:
    """Completion hook for a train job; a no-op unless it is a study member that succeeded."""
    try:
        with get_sessionmaker()() as session:
            job = studies.submit_eval(session, train_job_id)
        if job is not None:
            log.info("job %s: its study eval is job %s", train_job_id, job.id)
    except Exception:
        log.exception("job %s: submitting its study eval failed; beat retries", train_job_id)


def submit_missed() -> None:
    """Submit the evals of succeeded study train jobs that have none."""
    with get_sessionmaker()() as session:
        missed = studies.train_jobs_without_eval(session)
    for job_id in missed:
        submit_eval(job_id)
