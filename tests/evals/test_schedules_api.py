"""`/schedules` CRUD, validation errors, and what a trigger submits."""

from datetime import UTC, datetime

from store.models import Job
from tests.conftest import bearer
from tests.evals.helpers import add_checkpoint, make_job
from tests.service.helpers import broker_messages


def schedule_body(**overrides):  # type: ignore[no-untyped-def]
    return {
        "name": "nightly-math",
        "cron": "0 3 * * *",
        "eval": {"benchmarks": ["amc23"], "k": 2, "max_tokens": 8},
        "target": {"model_path": "dgpo-test/tiny"},
        **overrides,
    }


def post(client, token, body):  # type: ignore[no-untyped-def]
    return client.post("/schedules", json=body, headers=bearer(token))


def test_create_read_list_schedule(client, tokens):
    r = post(client, tokens["submit"], schedule_body(threshold=0.05))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["baseline"] == "previous" and created["threshold"] == 0.05
    assert created["eval"]["k"] == 2 and "model" not in created["eval"]
    assert created["target"] == {"model_path": "dgpo-test/tiny"}
    next_run = datetime.fromisoformat(created["next_run_at"])
    assert next_run > datetime.now(UTC) and (next_run.hour, next_run.minute) == (3, 0)
    read = bearer(tokens["read"])
    assert client.get(f"/schedules/{created['id']}", headers=read).json() == created
    assert [s["id"] for s in client.get("/schedules", headers=read).json()] == [created["id"]]


def test_invalid_schedule_is_422_naming_the_field(client, tokens, session):
    eval_with_model = {"benchmarks": ["amc23"], "model": {"path": "x"}}
    both_targets = {"model_path": "x", "latest_checkpoint_of": {"metadata": {"team": "x"}}}
    cases = [
        ({"cron": "every night"}, ("body", "cron")),
        ({"cron": "61 * * * *"}, ("body", "cron")),
        ({"eval": eval_with_model}, ("body", "eval", "model")),
        ({"eval": {"benchmarks": ["nope"]}}, ("body", "eval", "benchmarks", 0)),
        ({"target": both_targets}, ("body", "target")),
        ({"threshold": -0.1}, ("body", "threshold")),
        ({"webhook_url": "not a url"}, ("body", "webhook_url")),
    ]
    for override, loc in cases:
        r = post(client, tokens["submit"], schedule_body(**override))
        assert r.status_code == 422, (override, r.text)
        assert loc in [tuple(e["loc"]) for e in r.json()["detail"]], (override, r.text)
    r = post(client, tokens["submit"], schedule_body(baseline={"job_id": "missing"}))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "baseline", "job_id"]


def test_duplicate_name_is_409(client, tokens):
    assert post(client, tokens["submit"], schedule_body()).status_code == 201
    r = post(client, tokens["submit"], schedule_body())
    assert r.status_code == 409 and "nightly-math" in r.json()["detail"]


def test_patch_disables_and_reenables_and_delete_removes(client, tokens):
    sid = post(client, tokens["submit"], schedule_body()).json()["id"]
    headers = bearer(tokens["submit"])
    off = client.patch(f"/schedules/{sid}", json={"enabled": False}, headers=headers).json()
    assert off["enabled"] is False and off["next_run_at"] is None
    on = client.patch(
        f"/schedules/{sid}", json={"enabled": True, "cron": "30 1 * * 1"}, headers=headers
    ).json()
    next_run = datetime.fromisoformat(on["next_run_at"])
    assert (next_run.weekday(), next_run.hour, next_run.minute) == (0, 1, 30)
    bad = client.patch(f"/schedules/{sid}", json={"cron": "nope"}, headers=headers)
    assert bad.status_code == 422
    assert client.delete(f"/schedules/{sid}", headers=headers).status_code == 204
    for path in (f"/schedules/{sid}", f"/schedules/{sid}/runs"):
        assert client.get(path, headers=headers).status_code == 404


def test_read_token_cannot_create_or_trigger(client, tokens):
    assert post(client, tokens["read"], schedule_body()).status_code == 403
    sid = post(client, tokens["submit"], schedule_body()).json()["id"]
    r = client.post(f"/schedules/{sid}/trigger", headers=bearer(tokens["read"]))
    assert r.status_code == 403


def test_trigger_submits_an_eval_job_of_the_model_path_and_enqueues_it(
    client, tokens, session, redis_url
):
    sid = post(client, tokens["submit"], schedule_body()).json()["id"]
    r = client.post(f"/schedules/{sid}/trigger", headers=bearer(tokens["submit"]))
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["verdict"] is None and run["finished_at"] is None
    job = session.get(Job, run["job_id"])
    assert job.kind == "eval" and job.status == "queued"
    assert job.spec["model"] == {"path": "dgpo-test/tiny", "checkpoint": None}
    assert job.spec["k"] == 2 and job.spec["benchmarks"] == ["amc23"]
    assert job.metadata_ == {"schedule_id": sid, "schedule_run_id": str(run["id"])}
    assert ("dgpo.run_job", [job.id], 9) in broker_messages(redis_url, "cpu")
    runs = client.get(f"/schedules/{sid}/runs", headers=bearer(tokens["read"])).json()
    assert [x["id"] for x in runs] == [run["id"]]


def test_latest_checkpoint_target_pins_newest_checkpoint_of_newest_matching_job(
    client, tokens, session
):
    target = {"latest_checkpoint_of": {"metadata": {"team": "x"}}}
    sid = post(client, tokens["submit"], schedule_body(target=target)).json()["id"]
    trigger = f"/schedules/{sid}/trigger"
    headers = bearer(tokens["submit"])

    missing = client.post(trigger, headers=headers).json()
    assert missing["job_id"] is None and missing["finished_at"] is not None
    assert "team=x" in missing["comparison"]["error"]

    older = make_job(session, kind="train", metadata={"team": "x"})
    add_checkpoint(session, older.id, 50)
    newer = make_job(session, kind="train", metadata={"team": "x", "run": "2"})
    add_checkpoint(session, newer.id, 10)
    add_checkpoint(session, newer.id, 20)
    other_team = make_job(session, kind="train", metadata={"team": "y"})
    add_checkpoint(session, other_team.id, 99)
    still_running = make_job(session, kind="train", status="running", metadata={"team": "x"})
    add_checkpoint(session, still_running.id, 99)

    run = client.post(trigger, headers=headers).json()
    job = session.get(Job, run["job_id"])
    assert job.spec["model"] == {"path": None, "checkpoint": {"job_id": newer.id, "step": 20}}


def test_webhook_to_internal_addresses_is_422_naming_the_field(client, tokens):
    internal = [
        "http://127.0.0.1:6379/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://localhost:5432/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::127.0.0.1]/hook",  # IPv4-compatible (issue 24)
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b:1::a9fe:a9fe]/hook",  # local-use NAT64 of 169.254.169.254
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://0.0.0.0:8000/hook",
    ]
    sid = post(client, tokens["submit"], schedule_body()).json()["id"]
    for url in internal:
        r = post(client, tokens["submit"], schedule_body(name=f"n-{url}", webhook_url=url))
        assert r.status_code == 422, (url, r.text)
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "webhook_url"]], url
        patched = client.patch(
            f"/schedules/{sid}", json={"webhook_url": url}, headers=bearer(tokens["submit"])
        )
        assert patched.status_code == 422, (url, patched.text)
    assert len(client.get("/schedules", headers=bearer(tokens["read"])).json()) == 1
