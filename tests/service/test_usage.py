"""`GET /usage` and the usage counters: each ended attempt's wall and GPU seconds, summed
per principal, job and queue; a principal sees only its own."""

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import attempts
from store.leases import claim
from store.lifecycle import JobError
from store.models import AttemptUsage, Job, TokenScope
from store.tokens import create_token
from tests.conftest import bearer


def run_attempt(session: Session, owner: str, gpus: int, fail: bool = False) -> str:
    """One real claim and its end (`store.leases`, `store.attempts`) of a new job."""
    resources = {"gpus": gpus, "gpu_type": "h100" if gpus else "any"}
    job = Job(kind="train", spec={"resources": resources}, queue="gpu.h100", owner=owner)
    session.add(job)
    session.commit()
    lease = claim(job.id, "w@test", 30)
    assert lease is not None
    if fail:
        attempts.fail(lease, JobError("killed", "killed", 1), {}, retry_in=0)
    else:
        attempts.finish(lease, False, "done", {})
    return job.id


def test_usage_sums_equal_the_attempts_recorded_times(
    client: TestClient, session: Session, tokens: dict[str, str]
) -> None:
    retried = run_attempt(session, "team-a", 2, fail=True)  # re-queued: a second attempt
    second = claim(retried, "w@test", 30)
    assert second is not None
    attempts.finish(second, False, "done", {})
    run_attempt(session, "team-a", 1)
    run_attempt(session, "team-b", 0)
    rows = session.scalars(select(AttemptUsage)).all()
    assert len(rows) == 4
    for row in rows:
        assert row.wall_seconds == (row.ended_at - row.started_at).total_seconds()
        assert row.gpu_seconds == row.wall_seconds * row.gpus

    admin = client.get("/usage", params={"by": "principal"}, headers=bearer(tokens["admin"]))
    assert admin.status_code == 200, admin.text
    by_principal = {r["key"]: r for r in admin.json()["rows"]}
    for owner in ("team-a", "team-b"):
        mine = [r for r in rows if r.owner == owner]
        assert by_principal[owner]["attempts"] == len(mine)
        assert abs(by_principal[owner]["gpu_seconds"] - sum(r.gpu_seconds for r in mine)) < 1e-6
        assert abs(by_principal[owner]["wall_seconds"] - sum(r.wall_seconds for r in mine)) < 1e-6
    by_job = client.get("/usage", params={"by": "job"}, headers=bearer(tokens["admin"])).json()
    assert {r["key"]: r["attempts"] for r in by_job["rows"]}[retried] == 2

    team_b = bearer(create_token(session, "b", TokenScope.READ, "team-b"))
    own = client.get("/usage", headers=team_b).json()
    assert [r["key"] for r in own["rows"]] == ["team-b"]
    future = client.get("/usage", params={"since": "2999-01-01T00:00:00Z"}, headers=team_b)
    assert future.json()["rows"] == []
    naive = client.get("/usage", params={"since": "2026-01-01T00:00:00"}, headers=team_b)
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"] == ["query", "since"]

    metrics = client.get("/metrics", headers=bearer(tokens["read"])).text
    a_gpu = sum(r.gpu_seconds for r in rows if r.owner == "team-a")
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("dgpo_usage_gpu_seconds_total{") and 'principal="team-a"' in line
    )
    assert abs(float(line.rsplit(" ", 1)[1]) - a_gpu) < 1e-6
