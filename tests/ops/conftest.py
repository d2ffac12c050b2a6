"""Rows a finished job leaves behind, written straight to the real test database.

The ops tests exercise the read side (client, CLI, dashboard) against a running API;
they need a job with metrics, checkpoints and results without spending minutes on a
real training run, so these fixtures write the rows a worker would have written.
"""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.conftest import bearer

METRIC_NAMES = (  # as trainer.rl.loop reports them
    "reward/mean",
    "reward/accuracy",
    "response/length_mean",
    "clip/ln_frac",
    "clip/hp_frac",
    "weight/mean",
    "weight/max",
    "kl/approx_k3",
    "entropy/mean",
    "time/reward",
    "time/step",
    "perf/tokens_per_s",
)
STEPS = 12


def metric_values(step: int) -> dict[str, float]:
    """Distinct, step-dependent values per metric (so a wrong pivot shows)."""
    return {name: (i + 1) * 0.1 + step * 0.01 * (i + 1) for i, name in enumerate(METRIC_NAMES)}


def submit(client: Any, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/jobs", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()


def finish_job(session: Session, job_id: str, status: str = "succeeded") -> None:
    """Make `job_id` look like a train run a worker completed: metrics, checkpoints, results."""
    from store.models import Checkpoint, EvalResult, Job, JobEvent, Metric, utcnow

    job = session.get(Job, job_id)
    assert job is not None
    now = utcnow()
    job.status, job.attempt, job.progress = status, 1, 1.0
    job.current_step = STEPS  # of the STEPS its spec asked for
    job.started_at, job.finished_at = now - timedelta(minutes=7), now
    for step in range(1, STEPS + 1):
        session.add(Metric(job_id=job_id, step=step, values=metric_values(step)))
    for step in (6, 12):
        session.add(
            Checkpoint(
                job_id=job_id, step=step, uri=f"/ckpt/{job_id}/step_{step}", sha256="ab" * 32,
                size_bytes=3 << 20, attempt=1,
            )
        )  # fmt: skip
    problems = [{"problem_id": str(i), "num_samples": 4, "num_correct": i % 3} for i in range(5)]
    session.add(
        EvalResult(
            job_id=job_id, benchmark="gsm8k", step=None, k=4,
            scores={"avg@4": 0.25, "pass@1": 0.25, "pass@4": 0.6},
            per_problem={"problems": problems},
        )
    )  # fmt: skip
    session.add(JobEvent(job_id=job_id, kind=status, message="finished", attempt=1))
    session.commit()


@pytest.fixture
def finished_job(client, tokens, session) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from tests.service.helpers import train_body

    job = submit(client, tokens["submit"], train_body(metadata={"team": "ops"}, total_steps=STEPS))
    finish_job(session, job["id"])
    return job
