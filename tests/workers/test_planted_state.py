"""A pickle planted in a job's own checkpoint directory never runs in a real worker.

The job trains to its end through a real `dgpo worker`; then its newest checkpoint's
`trainer_state.pt` is replaced by a pickle whose `__reduce__` would run a shell command,
with a manifest that matches (the attacker can write one). Its next attempt, the one a
crash would trigger, resumes from that directory: it must fail the job, and the
command must not have run.
"""

import os
from pathlib import Path

import torch
from sqlalchemy import update

from store import broker
from store.models import Job, JobStatus
from tests.trainer.planted import Payload, reseal
from trainer.checkpoints.local import TRAINER_STATE, list_checkpoints


def test_a_planted_trainer_state_fails_the_attempt_and_never_runs(  # type: ignore[no-untyped-def]
    api, session, cpu_worker, train_request, tmp_path: Path
) -> None:
    job_id = api.submit(train_request(total_steps=2, every_steps=1))
    assert api.wait(job_id, cpu_worker)["status"] == "succeeded"
    own = Path(os.environ["DGPO_HOME"]) / "jobs" / job_id
    newest = list_checkpoints(own)[-1]
    marker = tmp_path / "pwned"
    torch.save({"step": 2, "x": Payload(marker)}, newest / TRAINER_STATE)
    reseal(newest)

    session.execute(
        update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED, finished_at=None)
    )
    session.commit()
    broker.enqueue([broker.RunMessage(job_id, "cpu", 0)])
    job = api.wait(job_id, cpu_worker, {"failed"})
    assert "other than plain data" in job["error"]["message"], job["error"]
    assert not marker.exists()
