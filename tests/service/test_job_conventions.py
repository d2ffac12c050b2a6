"""What users of other job APIs look for: a result pointer on the job, event levels,
checkpoints with their step's metrics, and an event stream (SSE) that delivers events as
they are written."""

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy.orm import Session

from store.lifecycle import JobError, append_event, transition
from store.models import Job, JobStatus
from tests.conftest import bearer
from tests.ops.conftest import STEPS, finish_job, metric_values, submit
from tests.service.helpers import train_body


def test_job_points_to_its_final_checkpoint(client, tokens, session):
    job = submit(client, tokens["submit"], train_body(total_steps=STEPS))
    assert job["result"] is None  # nothing saved yet

    finish_job(session, job["id"])

    read = bearer(tokens["read"])
    expected = {"step": 12, "uri": f"/ckpt/{job['id']}/step_12"}
    assert client.get(f"/jobs/{job['id']}", headers=read).json()["result"] == expected
    assert client.get("/jobs", headers=read).json()["items"][0]["result"] == expected


def test_checkpoints_carry_the_metrics_of_their_step(client, tokens, session):
    job = submit(client, tokens["submit"], train_body(total_steps=STEPS))
    finish_job(session, job["id"])

    rows = client.get(f"/jobs/{job['id']}/checkpoints", headers=bearer(tokens["read"])).json()
    assert [(r["step"], r["metrics"]) for r in rows] == [
        (6, metric_values(6)),
        (12, metric_values(12)),
    ]


def test_a_checkpoint_answer_is_the_stores_checkpoint_field_for_field():
    """One field list: the API's `CheckpointOut` is the store's `SavedCheckpoint` (the two
    spelled the same eight fields), so a field added to one is in the other."""
    from service.schemas import CheckpointOut
    from store.job_data import SavedCheckpoint

    assert issubclass(CheckpointOut, SavedCheckpoint)
    assert CheckpointOut.model_fields.keys() == SavedCheckpoint.model_fields.keys()


def test_events_carry_a_level(client, tokens, session):
    job = submit(client, tokens["submit"], train_body())
    row = session.get(Job, job["id"])
    transition(session, row, JobStatus.RUNNING)
    append_event(session, row, "checkpoint_skipped", "disk full; not saved")
    transition(
        session, row, JobStatus.FAILED, error=JobError("unknown", "loss is NaN at step 3", 1)
    )
    session.commit()

    events = client.get(f"/jobs/{job['id']}/events", headers=bearer(tokens["read"])).json()
    levels = {(e["kind"], e["data"].get("to")): e["level"] for e in events}
    assert levels[("status", "running")] == "info"
    assert levels[("checkpoint_skipped", None)] == "warning"
    assert levels[("status", "failed")] == "error"


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Messages of a `text/event-stream` (comments skipped)."""
    message: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "data" in message:
                yield message
            message = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")


def test_event_stream_delivers_each_event_as_it_is_written(live_server, tokens, session: Session):
    with httpx.Client(base_url=live_server, headers=bearer(tokens["submit"])) as http:
        job = http.post("/jobs", json=train_body()).json()
    row = session.get(Job, job["id"])
    seen: queue.Queue[dict[str, Any]] = queue.Queue()

    def listen() -> None:
        url = f"{live_server}/jobs/{job['id']}/events/stream"
        with httpx.stream("GET", url, headers=bearer(tokens["read"]), timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for message in _sse(response.iter_lines()):
                seen.put(message)
        seen.put({"event": "closed"})

    threading.Thread(target=listen, daemon=True).start()

    def next_of(kind: str) -> dict[str, Any]:
        while True:
            message = seen.get(timeout=10)
            if message["event"] == kind or message["event"] == "closed":
                return message

    assert json.loads(next_of("job")["data"])["status"] == "queued"
    # Each event reaches the client before the next one is written.
    for i in range(3):
        append_event(session, row, "note", f"note {i}")
        session.commit()
        message = next_of("job_event")
        event = json.loads(message["data"])
        assert (event["message"], event["level"]) == (f"note {i}", "info")
        assert message["id"] == str(event["id"])
    transition(session, row, JobStatus.CANCELLED)
    session.commit()
    assert json.loads(next_of("job_event")["data"])["data"]["to"] == "cancelled"
    assert json.loads(next_of("end")["data"])["status"] == "cancelled"
    assert next_of("closed") == {"event": "closed"}
