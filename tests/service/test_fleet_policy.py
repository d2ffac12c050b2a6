"""The operator's fleet policy at submit time and in `/queue`: queued-job quota (429),
priority cap (422 naming `priority`), `preemptible: false` for admins only, `max_attempts`
only lowered, demand by job shape."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from config.fleet_policy import PrincipalPolicy
from config.settings import get_settings
from store.models import TokenScope, Worker
from store.tokens import create_token
from tests.conftest import bearer
from tests.service.helpers import train_body


@pytest.fixture
def principals(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, PrincipalPolicy]]:
    chosen: dict[str, PrincipalPolicy] = {}
    monkeypatch.setattr(get_settings(), "principals", chosen)
    yield chosen


def team_token(session: Session, team: str) -> dict[str, str]:
    return bearer(create_token(session, f"{team}-ci", TokenScope.SUBMIT, team))


def test_a_principal_over_its_queued_limit_gets_429_naming_the_limit(
    client: TestClient, session: Session, principals: dict[str, PrincipalPolicy]
) -> None:
    principals["team-a"] = PrincipalPolicy(max_queued_jobs=2)
    a, b = team_token(session, "team-a"), team_token(session, "team-b")
    for _ in range(2):
        assert client.post("/jobs", json=train_body(), headers=a).status_code == 201
    refused = client.post("/jobs", json=train_body(), headers=a)
    assert refused.status_code == 429, refused.text
    assert "max_queued_jobs=2" in refused.json()["detail"]
    assert client.post("/jobs", json=train_body(), headers=b).status_code == 201
    listed = client.get("/jobs", headers=a).json()["items"]
    assert len(listed) == 2  # the refused submission left nothing behind


def test_only_an_admin_submits_above_the_principals_priority_cap(
    client: TestClient,
    session: Session,
    tokens: dict[str, str],
    principals: dict[str, PrincipalPolicy],
) -> None:
    principals["team-a"] = PrincipalPolicy(max_priority=5)
    a = team_token(session, "team-a")
    assert client.post("/jobs", json=train_body(priority=5), headers=a).status_code == 201
    refused = client.post("/jobs", json=train_body(priority=6), headers=a)
    assert refused.status_code == 422, refused.text
    (detail,) = refused.json()["detail"]
    assert detail["loc"] == ["body", "priority"] and "at most priority 5" in detail["msg"]
    admin = bearer(tokens["admin"])
    assert client.post("/jobs", json=train_body(priority=9), headers=admin).status_code == 201


def test_only_an_admin_submits_a_job_that_may_not_be_preempted(
    client: TestClient, tokens: dict[str, str]
) -> None:
    pinned = train_body(resources={"gpus": 1, "preemptible": False})
    refused = client.post("/jobs", json=pinned, headers=bearer(tokens["submit"]))
    assert refused.status_code == 422, refused.text
    (detail,) = refused.json()["detail"]
    assert detail["loc"] == ["body", "resources", "preemptible"] and "admin" in detail["msg"]
    accepted = client.post("/jobs", json=pinned, headers=bearer(tokens["admin"]))
    assert accepted.status_code == 201 and accepted.json()["resources"]["preemptible"] is False


def test_a_spec_may_lower_max_attempts_but_not_raise_it(client: TestClient, tokens) -> None:
    h = bearer(tokens["submit"])
    lowered = client.post("/jobs", json=train_body(max_attempts=1), headers=h)
    assert lowered.status_code == 201 and lowered.json()["max_attempts"] == 1
    assert "max_attempts" not in lowered.json()["spec"]
    raised = client.post("/jobs", json=train_body(max_attempts=5), headers=h)
    assert raised.status_code == 422
    assert raised.json()["detail"][0]["loc"] == ["body", "max_attempts"]


def test_queue_reports_demand_by_shape_and_jobs_no_live_slot_fits(
    client: TestClient, session: Session, tokens: dict[str, str]
) -> None:
    """A mixed fleet: an 8-GPU H100 host split into 8 slots, and a CPU host."""
    session.add_all(
        [
            Worker(id="h100-node", host="n1", gpu_type="h100", gpu_count=8, slots=8,
                   queues=["gpu.h100", "gpu.any"]),
            Worker(id="cpu-node", host="n2", queues=["cpu"], slots=4),
        ]
    )  # fmt: skip
    session.commit()
    h = bearer(tokens["submit"])
    for gpus in (1, 1, 1, 8):
        body = train_body(resources={"gpus": gpus, "gpu_type": "h100"})
        answer = client.post("/jobs", json=body, headers=h).json()
    assert answer["warnings"] == [
        "no live worker on queue gpu.h100 has a slot with 8 GPUs (the largest has 1); the job "
        "waits until one does (start a worker with at least 8 GPUs per slot: `dgpo worker "
        "--slots` = its GPUs / 8)"
    ]
    client.post("/jobs", json=train_body(), headers=h)
    body = client.get("/queue", headers=bearer(tokens["read"])).json()
    shapes = {(s["queue"], s["gpus"]): s for s in body["shapes"]}
    assert set(shapes) == {("gpu.h100", 1), ("gpu.h100", 8), ("cpu", 0)}
    assert (shapes[("gpu.h100", 1)]["queued"], shapes[("gpu.h100", 1)]["fits_live_slot"]) == (
        3,
        True,
    )
    assert (shapes[("gpu.h100", 8)]["queued"], shapes[("gpu.h100", 8)]["fits_live_slot"]) == (
        1,
        False,
    )
    assert shapes[("gpu.h100", 8)]["oldest_wait_seconds"] is not None
    assert body["largest_queued_gpus"] == 8
    h100 = next(r for r in body["queues"] if r["queue"] == "gpu.h100")
    assert (h100["queued"], h100["queued_gpus"]) == (4, 11)
    metrics = client.get("/metrics", headers=bearer(tokens["read"])).text
    shape = 'gpu_type="h100",gpus="8",nodes="1",queue="gpu.h100"'
    assert f"dgpo_queue_shape_jobs{{{shape}}} 1.0" in metrics
    assert f"dgpo_queue_shape_unplaceable{{{shape}}} 1.0" in metrics
    assert "dgpo_queue_largest_request_gpus 8.0" in metrics


def test_a_multi_node_job_is_unserved_until_enough_workers_have_a_slot_for_its_share(
    client: TestClient, session: Session, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DGPO_STORAGE_SHARED", "true")
    get_settings.cache_clear()
    session.add(Worker(id="a", host="n1", gpu_type="h100", gpu_count=8, queues=["gpu.h100"]))
    session.commit()
    body = train_body(resources={"gpus": 16, "nodes": 2, "gpu_type": "h100"})
    answer = client.post("/jobs", json=body, headers=bearer(tokens["submit"])).json()
    assert answer["warnings"] == [
        "the job runs on 2 workers of queue gpu.h100 with a slot of 8 GPUs each, and 1 live "
        "worker(s) have one; it waits until 2 do (start more with `dgpo worker --queues "
        "gpu.h100`)"
    ]
    session.add(Worker(id="b", host="n2", gpu_type="h100", gpu_count=8, queues=["gpu.h100"]))
    session.commit()
    queue = client.get("/queue", headers=bearer(tokens["read"])).json()
    (shape,) = queue["shapes"]
    assert (shape["gpus"], shape["nodes"], shape["fits_live_slot"]) == (16, 2, True)
    assert queue["warnings"] == []
    monkeypatch.undo()
    get_settings.cache_clear()
