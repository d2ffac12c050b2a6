"""What the dashboard's pages say, read from their HTML (the browser test is in
tests/ops/test_dashboard.py)."""

import re
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from store.lifecycle import JobError, transition
from store.models import Job, JobStatus, Worker, WorkerStatus, utcnow
from tests.conftest import bearer
from tests.ops.conftest import submit
from tests.service.helpers import train_body

ERROR = "trainer process exited with code 1: ValueError: loss is NaN at step 3"


def _failed_job(client, tokens, session: Session) -> str:
    job = submit(client, tokens["submit"], train_body())
    row = session.get(Job, job["id"])
    transition(session, row, JobStatus.RUNNING)
    transition(session, row, JobStatus.FAILED, error=JobError("unknown", ERROR, 1))
    session.commit()
    return job["id"]


def test_ui_without_a_token_answers_a_page_that_asks_for_one(client):
    page = client.get("/ui/jobs/x", headers={"accept": "text/html"})
    assert page.status_code == 401
    assert page.headers["content-type"].startswith("text/html")
    assert "dgpo token create" in page.text and 'action="/ui/login"' in page.text


def test_the_job_list_shows_a_failed_jobs_error(client, tokens, session):
    _failed_job(client, tokens, session)
    page = client.get("/ui", headers=bearer(tokens["read"])).text
    assert "loss is NaN at step 3" in page


def test_a_job_on_an_unserved_queue_warns_on_its_page(client, tokens, session):
    job = submit(client, tokens["submit"], train_body(resources={"gpus": 1, "gpu_type": "h100"}))
    page = client.get(f"/ui/jobs/{job['id']}", headers=bearer(tokens["read"])).text
    assert re.search(r'class="warning"[^>]*>[^<]*no live worker serves queue gpu.h100', page)


def test_missing_times_read_as_words(client, tokens, session):
    job = submit(client, tokens["submit"], train_body())
    page = client.get(f"/ui/jobs/{job['id']}", headers=bearer(tokens["read"])).text
    assert "/  /" not in page and " / </td>" not in page
    assert re.search(r"<th>started</th><td>not yet</td>", page)
    assert re.search(r"<th>finished</th><td>not yet</td>", page)


def test_dead_workers_are_hidden_after_a_day(client, tokens, session):
    now = utcnow()
    for name, status, seen in [
        ("w-alive", WorkerStatus.ALIVE, now),
        ("w-dead-recent", WorkerStatus.DEAD, now - timedelta(hours=2)),
        ("w-dead-old", WorkerStatus.DEAD, now - timedelta(days=3)),
    ]:
        session.add(Worker(id=name, host="h", status=status, heartbeat_at=seen, queues=["cpu"]))
    session.commit()
    page = client.get("/ui", headers=bearer(tokens["read"])).text
    assert "w-alive" in page and "w-dead-recent" in page
    assert "w-dead-old" not in page and "1 worker dead for over" in page


def test_the_event_log_shows_each_events_level(client, tokens, session):
    job_id = _failed_job(client, tokens, session)
    page = client.get(f"/ui/jobs/{job_id}", headers=bearer(tokens["read"])).text
    assert re.search(r'<td class="level error">error</td><td>status</td>', page)
    assert re.search(r'<td class="level info">info</td><td>status</td>', page)


def test_the_token_page_is_a_form_that_posts_the_token(client):
    """The token goes in a POST body, never in a URL an access log or history keeps
    (issue 24, 8); the page's CSP lets the form post only to this site."""
    page = client.get("/ui/jobs/x?status=failed")
    assert page.status_code == 401
    form = re.search(r'<form method="post" action="/ui/login">(.*?)</form>', page.text, re.S)
    assert form is not None, page.text
    assert re.search(r'<input[^>]+type="password"[^>]+name="token"', form.group(1))
    assert 'name="next" value="/ui/jobs/x?status=failed"' in form.group(1)
    assert "form-action 'self'" in page.headers["content-security-policy"]


def test_posting_a_token_sets_a_strict_httponly_cookie_and_goes_on(client, tokens):
    login = client.post(
        "/ui/login",
        data={"token": tokens["read"], "next": "/ui?status=queued"},
        follow_redirects=False,
    )
    assert login.status_code == 303 and login.headers["location"] == "/ui?status=queued"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"dgpo_ui_token={tokens['read']};"), cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/ui"} <= {p.strip() for p in cookie.split(";")}
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert tokens["read"] not in login.headers["location"]
    assert client.get("/ui?status=queued").status_code == 200  # the cookie authenticates


def test_a_login_over_https_sets_a_secure_cookie(clean_db, redis_url, tokens):
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(), base_url="https://testserver") as https:
        login = https.post("/ui/login", data={"token": tokens["read"]}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/ui"
    assert "Secure" in {p.strip() for p in login.headers["set-cookie"].split(";")}


@pytest.mark.parametrize("goes_to", ["https://elsewhere.example/", "//elsewhere.example", "/jobs"])
def test_a_login_goes_on_only_to_a_dashboard_page(client, tokens, goes_to):
    login = client.post(
        "/ui/login", data={"token": tokens["read"], "next": goes_to}, follow_redirects=False
    )
    assert login.status_code == 303 and login.headers["location"] == "/ui"


def test_a_wrong_token_is_asked_again_and_sets_no_cookie(client):
    login = client.post("/ui/login", data={"token": "nope"}, follow_redirects=False)
    assert login.status_code == 401 and "set-cookie" not in login.headers
    assert "unknown or revoked" in login.text and 'action="/ui/login"' in login.text


def test_a_login_posted_from_another_site_is_refused(client, tokens):
    """Login CSRF: another site's form would sign the browser in with the attacker's token."""
    login = client.post(
        "/ui/login",
        data={"token": tokens["read"]},
        headers={"origin": "https://elsewhere.example"},
        follow_redirects=False,
    )
    assert login.status_code == 403 and "set-cookie" not in login.headers
