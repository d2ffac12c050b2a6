"""What the dashboard's pages say, read from their HTML (the browser test is in
tests/ops/test_dashboard.py)."""

import re
from datetime import timedelta

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
    assert "dgpo token create" in page.text and "/ui?token=" in page.text


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
