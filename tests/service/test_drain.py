"""`POST /workers/{id}/drain`: admin only, a clear answer for unknown and dead workers,
a drained worker's slots claim nothing, and `preempt=true` asks its running jobs to give
their slots up (tests/workers/test_preemption_e2e.py runs both for real)."""

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.leases import place
from store.models import Job, JobEvent, Worker, WorkerStatus
from store.placement import Slot
from store.workers import heartbeat
from tests.conftest import bearer


def test_drain_needs_admin_and_names_unknown_or_dead_workers(
    client: TestClient, session: Session, tokens: dict[str, str]
) -> None:
    session.add_all(
        [
            Worker(id="idle@h", host="h", queues=["cpu"]),
            Worker(id="gone@h", host="h", queues=["cpu"], status=WorkerStatus.DEAD),
        ]
    )
    session.commit()
    admin = bearer(tokens["admin"])
    assert client.post("/workers/idle@h/drain", headers=bearer(tokens["submit"])).status_code == 403
    answer = client.post("/workers/idle@h/drain", headers=admin)
    assert answer.status_code == 200 and answer.json()["status"] == "drained"
    assert client.post("/workers/nobody@h/drain", headers=admin).status_code == 404
    dead = client.post("/workers/gone@h/drain", headers=admin)
    assert dead.status_code == 422 and "is dead" in dead.json()["detail"][0]["msg"]


def test_a_draining_worker_claims_nothing_and_its_heartbeat_keeps_it_drained(
    client: TestClient, session: Session, tokens: dict[str, str]
) -> None:
    session.add(Worker(id="w@h", host="h", queues=["cpu"]))
    job = Job(kind="train", spec={"resources": {"gpus": 0}}, queue="cpu")
    session.add(job)
    session.commit()
    client.post("/workers/w@h/drain", headers=bearer(tokens["admin"]))
    lease, placed = place(job.id, Slot("w@h", 0), 30)
    assert lease is None and placed.hand_back and "draining" in placed.reason
    assert heartbeat("w@h")
    session.expire_all()
    assert session.get_one(Worker, "w@h").status == WorkerStatus.DRAINED


def test_a_drain_with_preempt_asks_the_workers_running_jobs_and_only_them_to_stop(
    client: TestClient, session: Session, tokens: dict[str, str]
) -> None:
    session.add(Worker(id="w@h", host="h", queues=["cpu"]))
    jobs = [Job(kind="train", spec={"resources": {"gpus": 0}}, queue="cpu") for _ in range(3)]
    session.add_all(jobs)
    session.commit()
    ours, elsewhere = (
        place(jobs[0].id, Slot("w@h", 0), 30)[0],
        place(jobs[1].id, Slot("v@h", 0), 30)[0],
    )
    assert ours is not None and elsewhere is not None
    answer = client.post("/workers/w@h/drain?preempt=true", headers=bearer(tokens["admin"]))
    assert answer.status_code == 200 and answer.json()["status"] == "draining"
    session.expire_all()
    asked = {job.id: session.get_one(Job, job.id).preempt_requested_at is not None for job in jobs}
    assert asked == {ours.job_id: True, elsewhere.job_id: False, jobs[2].id: False}
    (event,) = session.scalars(select(JobEvent).where(JobEvent.kind == "preempt_requested")).all()
    assert event.job_id == ours.job_id and "worker w@h drains" in event.message
