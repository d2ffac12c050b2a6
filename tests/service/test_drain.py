"""`POST /workers/{id}/drain`: admin only, a clear answer for unknown and dead workers,
and a drained worker's slots claim nothing (the worker e2e test runs it for real)."""

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from store.leases import place
from store.models import Job, Worker, WorkerStatus
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
