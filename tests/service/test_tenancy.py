"""Owners: a principal sees, cancels and compares only its own jobs and schedules; admins
see everyone's; Idempotency-Keys are per principal; token management is admin-only."""

import pytest
from typer.testing import CliRunner

from store.models import ApiToken
from store.tokens import create_token
from tests.conftest import bearer
from tests.evals.test_schedules_api import schedule_body
from tests.service.helpers import eval_body, train_body

JOB_READS = ["", "/events", "/metrics", "/checkpoints", "/results"]


@pytest.fixture
def people(session) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """alice and bob (submit and read tokens each, different principals) and an admin."""

    def token(name: str, scope: str, principal: str) -> dict[str, str]:
        return bearer(create_token(session, name, scope, principal))

    return {
        "alice": token("alice", "submit", "team-alice"),
        "bob": token("bob", "submit", "team-bob"),
        "bob_read": token("bob-ro", "read", "team-bob"),
        "admin": token("root", "admin", "ops"),
    }


def test_another_principals_job_is_404_on_every_job_route(client, people):
    job = client.post("/jobs", json=train_body(), headers=people["alice"]).json()
    jid = job["id"]
    assert job["owner"] == "team-alice"
    for who in ("bob", "bob_read"):
        for suffix in JOB_READS:
            r = client.get(f"/jobs/{jid}{suffix}", headers=people[who])
            assert r.status_code == 404, (who, suffix, r.text)
            assert r.json()["detail"] == f"no job with id {jid!r}"
        compare = client.get(f"/evals/compare?a={jid}&b={jid}", headers=people[who])
        assert compare.status_code == 404, compare.text
        assert client.get("/jobs", headers=people[who]).json()["items"] == []
    assert client.post(f"/jobs/{jid}/cancel", headers=people["bob"]).status_code == 404
    assert client.get(f"/ui/jobs/{jid}", headers=people["bob"]).status_code == 404
    assert jid not in client.get("/ui", headers=people["bob"]).text
    # bob cannot evaluate alice's checkpoints by naming her job either
    ref = eval_body(model={"checkpoint": {"job_id": jid}})
    r = client.post("/jobs", json=ref, headers=people["bob"])
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "eval", "model", "checkpoint", "job_id"]
    assert r.json()["detail"][0]["msg"] == f"no job with id {jid!r}"  # as if it did not exist
    # alice herself still sees and cancels it
    for suffix in JOB_READS:
        assert client.get(f"/jobs/{jid}{suffix}", headers=people["alice"]).status_code == 200
    assert client.get("/jobs", headers=people["alice"]).json()["items"][0]["id"] == jid
    assert client.post("/jobs", json=ref, headers=people["alice"]).status_code == 201
    cancelled = client.post(f"/jobs/{jid}/cancel", headers=people["alice"])
    assert cancelled.json()["status"] == "cancelled"


def test_admin_sees_and_manages_every_principals_jobs(client, people):
    jid = client.post("/jobs", json=train_body(), headers=people["alice"]).json()["id"]
    bobs = client.post("/jobs", json=train_body(), headers=people["bob"]).json()["id"]
    listed = client.get("/jobs", headers=people["admin"]).json()["items"]
    assert {j["id"] for j in listed} == {jid, bobs}
    for suffix in JOB_READS:
        assert client.get(f"/jobs/{jid}{suffix}", headers=people["admin"]).status_code == 200
    assert client.get(f"/ui/jobs/{jid}", headers=people["admin"]).status_code == 200
    r = client.post(f"/jobs/{jid}/cancel", headers=people["admin"])
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


def test_idempotency_keys_are_per_principal_and_never_leak_a_job_id(client, people):
    key = {"Idempotency-Key": "nightly"}
    alices = client.post("/jobs", json=train_body(), headers={**people["alice"], **key})
    assert alices.status_code == 201
    # bob reusing alice's key with her very body gets a job of his own
    bobs = client.post("/jobs", json=train_body(), headers={**people["bob"], **key})
    assert bobs.status_code == 201 and bobs.json()["id"] != alices.json()["id"]
    assert bobs.json()["owner"] == "team-bob"
    again = client.post("/jobs", json=train_body(), headers={**people["bob"], **key})
    assert again.status_code == 200 and again.json()["id"] == bobs.json()["id"]
    # a probe with another body names only bob's own job
    probe = client.post("/jobs", json=train_body(total_steps=9), headers={**people["bob"], **key})
    assert probe.status_code == 422
    assert bobs.json()["id"] in probe.text and alices.json()["id"] not in probe.text
    fresh = client.post(
        "/jobs", json=train_body(total_steps=9), headers={**people["bob"], "Idempotency-Key": "k2"}
    )
    assert fresh.status_code == 201


def test_another_principals_schedule_is_404_on_every_schedule_route(client, people):
    made = client.post("/schedules", json=schedule_body(), headers=people["alice"])
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    assert made.json()["owner"] == "team-alice"
    bob = people["bob"]
    calls = [
        client.get(f"/schedules/{sid}", headers=bob),
        client.get(f"/schedules/{sid}/runs", headers=bob),
        client.patch(f"/schedules/{sid}", json={"enabled": False}, headers=bob),
        client.post(f"/schedules/{sid}/trigger", headers=bob),
        client.delete(f"/schedules/{sid}", headers=bob),
        client.get(f"/schedules/{sid}", headers=people["bob_read"]),
    ]
    assert [c.status_code for c in calls] == [404] * len(calls), [c.text for c in calls]
    assert client.get("/schedules", headers=bob).json() == []
    # names are unique per owner; a baseline must be one of the caller's own jobs
    assert client.post("/schedules", json=schedule_body(), headers=bob).status_code == 201
    alices_job = client.post("/jobs", json=eval_body(), headers=people["alice"]).json()["id"]
    stolen = schedule_body(name="steal", baseline={"job_id": alices_job})
    assert client.post("/schedules", json=stolen, headers=bob).status_code == 422
    # alice's schedule is intact; a trigger's eval job is hers
    run = client.post(f"/schedules/{sid}/trigger", headers=people["alice"]).json()
    job = client.get(f"/jobs/{run['job_id']}", headers=people["alice"]).json()
    assert job["owner"] == "team-alice"
    assert client.get(f"/jobs/{run['job_id']}", headers=bob).status_code == 404
    assert len(client.get("/schedules", headers=people["admin"]).json()) == 2


def test_only_admin_tokens_manage_tokens(client, people, session):
    for who in ("alice", "bob_read"):
        assert client.get("/tokens", headers=people[who]).status_code == 403
        r = client.post("/tokens", json={"name": "x", "scope": "admin"}, headers=people[who])
        assert r.status_code == 403
    made = client.post(
        "/tokens",
        json={"name": "carol", "scope": "submit", "principal": "team-carol"},
        headers=people["admin"],
    )
    assert made.status_code == 201, made.text
    carol = bearer(made.json()["token"])
    jid = client.post("/jobs", json=train_body(), headers=carol).json()["id"]
    assert client.get(f"/jobs/{jid}", headers=people["alice"]).status_code == 404
    listed = client.get("/tokens", headers=people["admin"]).json()
    assert {"carol", "alice", "root"} <= {t["name"] for t in listed}
    assert all("token" not in t for t in listed)
    assert client.delete("/tokens/carol", headers=people["admin"]).status_code == 204
    assert client.delete("/tokens/carol", headers=people["admin"]).status_code == 404


def test_cli_creates_a_token_for_a_principal(clean_db, session):
    from dgpo.cli import app

    result = CliRunner().invoke(
        app, ["token", "create", "ci", "--scope", "submit", "--principal", "team-ci"]
    )
    assert result.exit_code == 0, result.output
    row = session.query(ApiToken).filter_by(name="ci").one()
    assert (row.principal, row.scope) == ("team-ci", "submit")


def test_worker_host_names_are_shown_to_admin_tokens_only(client, people, session):
    """A job's `lease_owner` names the worker host running it: fleet detail for the
    operator, not for the principals whose jobs run there."""
    from store.models import Job

    jid = client.post("/jobs", json=train_body(), headers=people["bob"]).json()["id"]
    session.get(Job, jid).lease_owner = "gpu-node-17.internal@slot0"
    session.commit()
    for who in ("bob", "bob_read"):
        assert client.get(f"/jobs/{jid}", headers=people[who]).json()["lease_owner"] is None
        (listed,) = client.get("/jobs", headers=people[who]).json()["items"]
        assert listed["lease_owner"] is None
        page = client.get(f"/ui/jobs/{jid}", headers=people[who])
        assert page.status_code == 200 and "gpu-node-17" not in page.text
    seen = client.get(f"/jobs/{jid}", headers=people["admin"]).json()
    assert seen["lease_owner"] == "gpu-node-17.internal@slot0"
    assert "gpu-node-17" in client.get(f"/ui/jobs/{jid}", headers=people["admin"]).text
