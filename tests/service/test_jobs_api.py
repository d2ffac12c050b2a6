"""The /jobs endpoints against the real Postgres: submit, list, read, cancel, job data."""

from sqlalchemy import update

from store.models import Checkpoint, EvalResult, Job, JobStatus, Metric
from tests.conftest import bearer
from tests.service.helpers import broker_messages, eval_body, train_body


def submit(client, token, body, **headers):  # type: ignore[no-untyped-def]
    return client.post("/jobs", json=body, headers={**bearer(token), **headers})


def test_submit_train_job_returns_201_with_queued_job_and_derived_queue(client, tokens):
    body = train_body(
        priority=7, metadata={"team": "math"}, resources={"gpus": 2, "gpu_type": "h100"}
    )
    r = submit(client, tokens["submit"], body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["kind"] == "train"
    assert (job["queue"], job["gpus"], job["gpu_type"]) == ("gpu.h100", 2, "h100")
    assert job["priority"] == 7 and job["metadata"] == {"team": "math"}
    assert job["spec"]["total_steps"] == 3 and job["total_steps"] == 3
    assert "kind" not in job["spec"] and "metadata" not in job["spec"]
    assert job["attempt"] == 0 and job["max_attempts"] == 3 and job["enqueued_at"]


def test_the_spec_is_the_one_record_of_resources_and_steps(client, tokens):
    """The row keeps no copy of them; every read shows them as before, from the spec."""
    assert not {"resources", "gpus", "gpu_type", "total_steps"} & set(Job.__table__.c.keys())
    resources = {"gpus": 2, "gpu_type": "h100"}
    train = submit(client, tokens["submit"], train_body(resources=resources)).json()
    evaluation = submit(client, tokens["submit"], eval_body()).json()
    for job in (train, client.get(f"/jobs/{train['id']}", headers=bearer(tokens["read"])).json()):
        shown = {**resources, "nodes": 1, "gpu_memory_mb": None, "preemptible": True}  # defaults
        assert (job["resources"], job["gpus"], job["gpu_type"]) == (shown, 2, "h100")
        assert (job["queue"], job["total_steps"]) == ("gpu.h100", 3)
    listed = client.get("/jobs", params={"kind": "eval"}, headers=bearer(tokens["read"]))
    (listed_eval,) = [j for j in listed.json()["items"] if j["id"] == evaluation["id"]]
    for job in (evaluation, listed_eval):
        cpu = {"gpus": 0, "nodes": 1, "gpu_type": "any", "gpu_memory_mb": None, "preemptible": True}
        assert (job["resources"], job["queue"], job["total_steps"]) == (cpu, "cpu", None)


def test_submit_publishes_run_job_message_on_the_jobs_queue(client, tokens, redis_url):
    job = submit(client, tokens["submit"], eval_body(priority=9)).json()
    messages = broker_messages(redis_url, "cpu")
    assert ("dgpo.run_job", [job["id"]], 0) in messages  # priority 9 -> Redis priority 0


def test_invalid_spec_is_422_naming_the_field(client, tokens):
    body = train_body()
    body["optim"] = {"lr": -1}
    r = submit(client, tokens["submit"], body)
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["detail"]]
    assert ["body", "train", "optim", "lr"] in locs


def test_unknown_kind_and_unknown_key_are_422(client, tokens):
    r = submit(client, tokens["submit"], {**train_body(), "kind": "dance"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:1] == ["body"]
    r = submit(client, tokens["submit"], {**eval_body(), "benchmarkz": ["gsm8k"]})
    assert r.status_code == 422
    assert any(e["loc"][-1] == "benchmarkz" for e in r.json()["detail"])


def test_cross_field_validation_is_422_with_message(client, tokens):
    r = submit(client, tokens["submit"], eval_body(pass_k=[5]))
    assert r.status_code == 422
    assert "pass_k entry 5 exceeds k (2)" in r.text


def test_get_job_and_404_for_unknown_id(client, tokens):
    job = submit(client, tokens["submit"], train_body()).json()
    r = client.get(f"/jobs/{job['id']}", headers=bearer(tokens["read"]))
    assert r.status_code == 200 and r.json()["id"] == job["id"]
    for path in ("", "/events", "/metrics", "/checkpoints", "/results"):
        r = client.get(f"/jobs/no-such-job{path}", headers=bearer(tokens["read"]))
        assert r.status_code == 404, path
        assert "no-such-job" in r.json()["detail"]
    r = client.post("/jobs/no-such-job/cancel", headers=bearer(tokens["submit"]))
    assert r.status_code == 404


def test_list_filters_by_status_kind_and_metadata_newest_first(client, tokens, session):
    ids = {}
    for name, body in {
        "a": train_body(metadata={"team": "x", "run": "1"}),
        "b": eval_body(metadata={"team": "x"}),
        "c": train_body(metadata={"team": "y"}),
    }.items():
        ids[name] = submit(client, tokens["submit"], body).json()["id"]
    session.execute(update(Job).where(Job.id == ids["c"]).values(status=JobStatus.RUNNING))
    session.commit()

    def listed(**params):  # type: ignore[no-untyped-def]
        r = client.get("/jobs", params=params, headers=bearer(tokens["read"]))
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["items"]]

    assert listed() == [ids["c"], ids["b"], ids["a"]]
    assert listed(status="running") == [ids["c"]]
    assert listed(status=["queued", "running"], kind="train") == [ids["c"], ids["a"]]
    assert listed(**{"metadata.team": "x"}) == [ids["b"], ids["a"]]
    assert listed(metadata=["team:x", "run:1"]) == [ids["a"]]
    assert listed(metadata="team:z") == []


def test_list_pages_with_cursor_without_gaps_or_repeats(client, tokens):
    ids = [submit(client, tokens["submit"], train_body()).json()["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/jobs", params=params, headers=bearer(tokens["read"])).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_bad_list_parameters_are_422(client, tokens):
    h = bearer(tokens["read"])
    assert client.get("/jobs", params={"cursor": "garbage!"}, headers=h).status_code == 422
    assert client.get("/jobs", params={"status": "sleeping"}, headers=h).status_code == 422
    assert client.get("/jobs", params={"metadata": "novalue"}, headers=h).status_code == 422
    assert client.get("/jobs", params={"limit": 0}, headers=h).status_code == 422


def test_cancel_queued_job_is_immediate_and_idempotent(client, tokens):
    job = submit(client, tokens["submit"], train_body()).json()
    for _ in range(2):
        r = client.post(f"/jobs/{job['id']}/cancel", headers=bearer(tokens["submit"]))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert r.json()["finished_at"]
    events = client.get(f"/jobs/{job['id']}/events", headers=bearer(tokens["read"])).json()
    assert [e["kind"] for e in events] == ["submitted", "status"]  # second cancel: no event
    assert events[1]["data"] == {"from": "queued", "to": "cancelled"}


def test_cancel_running_job_goes_to_cancelling(client, tokens, session):
    job = submit(client, tokens["submit"], train_body()).json()
    session.execute(update(Job).where(Job.id == job["id"]).values(status=JobStatus.RUNNING))
    session.commit()
    r = client.post(f"/jobs/{job['id']}/cancel", headers=bearer(tokens["submit"]))
    assert r.status_code == 200 and r.json()["status"] == "cancelling"
    r = client.post(f"/jobs/{job['id']}/cancel", headers=bearer(tokens["submit"]))
    assert r.status_code == 200 and r.json()["status"] == "cancelling"


def test_cancel_finished_job_is_409(client, tokens, session):
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        job = submit(client, tokens["submit"], train_body()).json()
        session.execute(update(Job).where(Job.id == job["id"]).values(status=status))
        session.commit()
        r = client.post(f"/jobs/{job['id']}/cancel", headers=bearer(tokens["submit"]))
        assert r.status_code == 409
        assert f"cannot go from '{status.value}' to 'cancelling'" in r.json()["detail"]


def test_events_poll_after_id(client, tokens):
    job = submit(client, tokens["submit"], train_body()).json()
    client.post(f"/jobs/{job['id']}/cancel", headers=bearer(tokens["submit"]))
    url = f"/jobs/{job['id']}/events"
    first = client.get(url, params={"limit": 1}, headers=bearer(tokens["read"])).json()
    rest = client.get(
        url, params={"after_id": first[0]["id"]}, headers=bearer(tokens["read"])
    ).json()
    assert [e["kind"] for e in first + rest] == ["submitted", "status"]


def test_metrics_filter_names_range_and_downsample(client, tokens, session):
    job = submit(client, tokens["submit"], train_body()).json()
    session.add_all(
        Metric(job_id=job["id"], step=s, values={"loss": 1.0 / s, "reward": s / 100})
        for s in range(1, 101)
    )
    session.commit()
    url, h = f"/jobs/{job['id']}/metrics", bearer(tokens["read"])
    full = client.get(url, headers=h).json()
    assert full["total_points"] == 100 and [p["step"] for p in full["points"]] == list(
        range(1, 101)
    )
    sub = client.get(url, params={"names": "loss", "min_step": 10, "max_step": 19}, headers=h)
    points = sub.json()["points"]
    assert [p["step"] for p in points] == list(range(10, 20))
    assert all(set(p["values"]) == {"loss"} for p in points)
    down = client.get(url, params={"max_points": 10}, headers=h).json()
    steps = [p["step"] for p in down["points"]]
    assert len(steps) <= 10 and steps[0] == 1 and steps[-1] == 100 and steps == sorted(steps)


def test_checkpoints_and_results_are_listed(client, tokens, session):
    job = submit(client, tokens["submit"], train_body()).json()
    session.add_all(
        [
            Checkpoint(job_id=job["id"], step=2, uri="/c/2", sha256="b" * 64, size_bytes=20),
            Checkpoint(job_id=job["id"], step=1, uri="/c/1", sha256="a" * 64, size_bytes=10),
            EvalResult(
                job_id=job["id"],
                benchmark="gsm8k",
                step=2,
                k=4,
                scores={"avg@4": 0.5},
                per_problem={"problems": []},
            ),
        ]
    )
    session.commit()
    h = bearer(tokens["read"])
    ckpts = client.get(f"/jobs/{job['id']}/checkpoints", headers=h).json()
    assert [(c["step"], c["uri"]) for c in ckpts] == [(1, "/c/1"), (2, "/c/2")]
    results = client.get(f"/jobs/{job['id']}/results", headers=h).json()
    assert [(r["benchmark"], r["step"], r["scores"]) for r in results] == [
        ("gsm8k", 2, {"avg@4": 0.5})
    ]
    none = client.get(f"/jobs/{job['id']}/results", params={"benchmark": "aime24"}, headers=h)
    assert none.json() == []


def test_201_body_equals_a_later_get(client, tokens):
    """What submit answers is what a read of the job returns: nothing serves this queue, so
    nothing may change the job between the two. Only `warnings` differs, by design: it is
    the submit's advice about that moment (here: no worker serves the queue), not stored."""
    body = train_body(metadata={"team": "math"}, resources={"gpus": 1, "gpu_type": "nobody"})
    created = submit(client, tokens["submit"], body)
    assert created.status_code == 201, created.text
    read = client.get(f"/jobs/{created.json()['id']}", headers=bearer(tokens["read"]))
    assert read.status_code == 200, read.text
    assert created.json()["warnings"] and read.json()["warnings"] == []
    assert created.json() == {**read.json(), "warnings": created.json()["warnings"]}
