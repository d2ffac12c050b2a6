"""Schedule runs settle into verdicts: the completion hook and the beat tick.

The worker's part (running the eval) is stood in for by writing the job's status and
results the way the worker does; `tests/evals/test_schedule_e2e.py` runs it for real.
"""

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select, update

from config.settings import get_settings
from store.models import Job, JobEvent, Schedule
from tests.conftest import bearer, free_port
from tests.evals.helpers import add_results, counts, make_job
from workers.schedules import settle_job, tick

GOOD, BAD = counts([4] * 30), counts([0] * 30)


@pytest.fixture(autouse=True)
def loopback_webhooks_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The operator's opt-in that lets webhooks reach this test's own 127.0.0.1 server,
    and retries 50 ms apart instead of seconds."""
    monkeypatch.setenv("DGPO_OUTBOUND_PRIVATE_NETWORKS", '["127.0.0.1/32"]')
    monkeypatch.setenv("DGPO_WEBHOOK_BACKOFF_S", "0.05")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


SECRET_BODY = b"internal-service-secret-token"


def _serve(*statuses: int, host: str = "127.0.0.1") -> tuple[HTTPServer, list[dict]]:
    """A real HTTP endpoint that records the JSON bodies POSTed to it and answers them with
    `statuses` in turn (the last one from then on)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status = statuses[min(len(received), len(statuses)) - 1]
            self.send_response(status)
            self.end_headers()
            if status != 204:
                self.wfile.write(SECRET_BODY)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    server, received = _serve(204)
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def create(client, token, **overrides):  # type: ignore[no-untyped-def]
    body = {
        "name": "nightly",
        "cron": "0 3 * * *",
        "eval": {"benchmarks": ["math500"], "k": 4},
        "target": {"model_path": "dgpo-test/tiny"},
        **overrides,
    }
    r = client.post("/schedules", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def trigger(client, token, sid):  # type: ignore[no-untyped-def]
    return client.post(f"/schedules/{sid}/trigger", headers=bearer(token)).json()


def finish(session, job_id, results, status="succeeded"):  # type: ignore[no-untyped-def]
    """What the worker leaves: the results rows and a terminal status."""
    if results is not None:
        add_results(session, job_id, "math500", results)
    session.execute(update(Job).where(Job.id == job_id).values(status=status, error="boom"))
    session.commit()


def runs(client, token, sid):  # type: ignore[no-untyped-def]
    return client.get(f"/schedules/{sid}/runs", headers=bearer(token)).json()[::-1]


def event_kinds(session, job_id):  # type: ignore[no-untyped-def]
    return session.scalars(select(JobEvent.kind).where(JobEvent.job_id == job_id)).all()


def test_previous_baseline_gives_pass_then_regression_with_event_and_webhook(
    client, tokens, session, webhook
):
    url, received = webhook
    sid = create(client, tokens["submit"], webhook_url=url)
    first = trigger(client, tokens["submit"], sid)
    finish(session, first["job_id"], GOOD)
    settle_job(first["job_id"])
    second = trigger(client, tokens["submit"], sid)
    finish(session, second["job_id"], BAD)
    settle_job(second["job_id"])
    settle_job(second["job_id"])  # idempotent: a redelivered hook changes nothing

    done = runs(client, tokens["read"], sid)
    assert [r["verdict"] for r in done] == ["no baseline", "regression"]
    assert done[0]["comparison"]["baseline_job_id"] is None
    comparison = done[1]["comparison"]
    assert comparison["baseline_job_id"] == first["job_id"]
    (math,) = comparison["benchmarks"]
    assert (math["benchmark"], math["difference"], math["num_problems"]) == ("math500", -1.0, 30)
    assert math["ci_high"] < 0
    assert event_kinds(session, second["job_id"]).count("regression") == 1
    assert "webhook_sent" in event_kinds(session, second["job_id"])
    assert len(received) == 1
    assert received[0]["verdict"] == "regression" and received[0]["job_id"] == second["job_id"]
    assert received[0]["schedule"]["name"] == "nightly"


def test_fixed_baseline_improvement_within_threshold_is_pass(client, tokens, session):
    baseline = make_job(session)
    add_results(session, baseline.id, "math500", counts([2] * 30))
    strict = create(client, tokens["submit"], baseline={"job_id": baseline.id}, threshold=0.6)
    loose = create(
        client, tokens["submit"], name="loose", baseline={"job_id": baseline.id}, threshold=0.1
    )
    for sid in (strict, loose):
        run = trigger(client, tokens["submit"], sid)
        finish(session, run["job_id"], GOOD)  # +0.5 accuracy on every problem
        settle_job(run["job_id"])
    assert runs(client, tokens["read"], strict)[0]["verdict"] == "pass"
    assert runs(client, tokens["read"], loose)[0]["verdict"] == "improvement"


def test_failed_eval_job_records_the_error_and_is_skipped_as_baseline(client, tokens, session):
    sid = create(client, tokens["submit"])
    failed = trigger(client, tokens["submit"], sid)
    finish(session, failed["job_id"], None, status="failed")
    settle_job(failed["job_id"])
    ok = trigger(client, tokens["submit"], sid)
    finish(session, ok["job_id"], GOOD)
    settle_job(ok["job_id"])
    first, second = runs(client, tokens["read"], sid)
    assert first["verdict"] is None and "failed: boom" in first["comparison"]["error"]
    assert first["finished_at"] is not None
    assert second["verdict"] == "no baseline"
    assert second["comparison"]["baseline_job_id"] is None


def test_unreachable_webhook_is_an_event_not_a_crash(client, tokens, session):
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    baseline = make_job(session)
    add_results(session, baseline.id, "math500", GOOD)
    sid = create(client, tokens["submit"], baseline={"job_id": baseline.id}, webhook_url=url)
    run = trigger(client, tokens["submit"], sid)
    finish(session, run["job_id"], BAD)
    settle_job(run["job_id"])
    assert runs(client, tokens["read"], sid)[0]["verdict"] == "regression"
    failed = _webhook_events(session, run["job_id"])  # transient: every try is recorded
    assert [e.kind for e in failed] == ["webhook_failed"] * 4
    assert all(url in e.message for e in failed)


def test_tick_fires_due_schedules_once_and_settles_orphaned_runs(client, tokens, session):
    due, disabled = create(client, tokens["submit"]), create(client, tokens["submit"], name="off")
    client.patch(f"/schedules/{disabled}", json={"enabled": False}, headers=bearer(tokens["admin"]))
    past = datetime.now(UTC) - timedelta(hours=1)
    session.execute(update(Schedule).values(next_run_at=past))
    session.commit()

    fired = tick()
    assert len(fired) == 1 and tick() == []  # next_run_at moved past now
    session.expire_all()
    schedule = session.get(Schedule, due)
    assert schedule.next_run_at > datetime.now(UTC) and schedule.last_run_at is not None
    (run,) = runs(client, tokens["read"], due)
    assert run["id"] == fired[0] and runs(client, tokens["read"], disabled) == []

    # The job is cancelled while queued: no worker hook ever runs; the next tick settles it.
    client.post(f"/jobs/{run['job_id']}/cancel", headers=bearer(tokens["submit"]))
    tick()
    (settled,) = runs(client, tokens["read"], due)
    assert settled["finished_at"] is not None and "cancelled" in settled["comparison"]["error"]


def _regression(client, tokens, session, url):  # type: ignore[no-untyped-def]
    """A schedule with webhook `url` whose run regresses; returns the run's job id."""
    baseline = make_job(session)
    add_results(session, baseline.id, "math500", GOOD)
    sid = create(client, tokens["submit"], baseline={"job_id": baseline.id}, webhook_url=url)
    run = trigger(client, tokens["submit"], sid)
    finish(session, run["job_id"], BAD)
    return run["job_id"]


def _webhook_events(session, job_id):  # type: ignore[no-untyped-def]
    events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
    return [e for e in events if e.kind.startswith("webhook")]


def test_webhook_to_a_name_that_resolves_to_loopback_is_refused_when_sent(
    client, tokens, session, monkeypatch
):
    """The name passes at submit (no DNS there); every resolved address is checked at send."""
    server, received = _serve(204, host="0.0.0.0")  # refused before any try: not retried
    name = socket.gethostname()  # this machine's own name: loopback or a private address
    url = f"http://{name}:{server.server_port}/hook"
    monkeypatch.setenv("DGPO_OUTBOUND_PRIVATE_NETWORKS", "[]")
    get_settings.cache_clear()
    job_id = _regression(client, tokens, session, url)
    settle_job(job_id)
    server.shutdown()
    (event,) = _webhook_events(session, job_id)
    assert event.kind == "webhook_failed" and "non-public address" in event.message
    assert received == []


def test_webhook_response_body_never_reaches_an_event(client, tokens, session):
    server, received = _serve(400)
    url = f"http://127.0.0.1:{server.server_port}/hook"
    job_id = _regression(client, tokens, session, url)
    settle_job(job_id)
    server.shutdown()
    (event,) = _webhook_events(session, job_id)  # a client error is final: one try
    assert len(received) == 1 and event.kind == "webhook_failed" and "400" in event.message
    assert SECRET_BODY.decode() not in event.message


def test_transient_webhook_failures_are_retried_with_backoff_and_each_try_recorded(
    client, tokens, session
):
    server, received = _serve(503, 502, 204)
    url = f"http://127.0.0.1:{server.server_port}/hook"
    job_id = _regression(client, tokens, session, url)
    settle_job(job_id)
    server.shutdown()
    events = _webhook_events(session, job_id)
    assert [(e.kind, e.data["try"]) for e in events] == [
        ("webhook_failed", 1), ("webhook_failed", 2), ("webhook_sent", 3)
    ]  # fmt: skip
    assert events[0].message == f"try 1/4: POST {url} failed: HTTP 503; retrying in 0.05s"
    assert events[1].message == f"try 2/4: POST {url} failed: HTTP 502; retrying in 0.1s"
    assert events[2].message == f"try 3/4: POST {url}: 204"
    assert len(received) == 3 and received[0] == received[2]  # the same alert each time


def test_webhook_retries_stop_at_their_bound(client, tokens, session):
    server, received = _serve(500)
    url = f"http://127.0.0.1:{server.server_port}/hook"
    job_id = _regression(client, tokens, session, url)
    settle_job(job_id)
    server.shutdown()
    events = _webhook_events(session, job_id)
    assert len(received) == len(events) == 4
    assert events[-1].message == f"try 4/4: POST {url} failed: HTTP 500; giving up"
