"""A job's events as Server-Sent Events (`text/event-stream`), sent as they are written.

The stream reads the database every `POLL_S`: Postgres is the truth and the embedded
stack runs SQLite, which has no LISTEN/NOTIFY, and an indexed `id > last` read twice a
second per watcher is cheap. Messages, in the order a client needs them:

- `event: job_event`, `id: <event id>`: an `EventOut`, oldest first. A reconnecting
  `EventSource` sends the last id as `Last-Event-ID` and resumes after it;
- `event: job`: the `JobOut` whenever the job changed (status, progress, step, result);
  the first read always sends one;
- `event: end`: the final `JobOut`, once the job is terminal and every event was sent;
  then the stream closes;
- a `: keep-alive` comment after `KEEPALIVE_S` of silence, so proxies keep it open.

The `data:` of each is one line of JSON, as OpenAI's and Together's streams send it.
"""

from collections.abc import AsyncIterator

import anyio
from fastapi.concurrency import run_in_threadpool

from service.job_views import with_results
from service.schemas import EventOut, JobOut
from store import job_data, jobs
from store.db import get_sessionmaker
from store.models import TERMINAL_STATUSES

MEDIA_TYPE = "text/event-stream"
POLL_S = 0.5
KEEPALIVE_S = 15.0
BATCH = 200
"""Events read per poll; a longer backlog drains over successive polls without a pause."""


def message(event: str, data: str, event_id: int | None = None) -> str:
    """One SSE message; `data` is a single line (JSON never holds a raw newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def _read(
    job_id: str, owner: str | None, sees_hosts: bool, after_id: int
) -> tuple[JobOut, list[EventOut]]:
    """The job, then its events after `after_id`: read in this order, a terminal job's
    last events are in the list."""
    with get_sessionmaker()() as session:
        job = with_results(
            session, [jobs.get_job(session, job_id, owner=owner)], sees_hosts=sees_hosts
        )[0]
        events = job_data.events(session, job_id, after_id, BATCH)
        return job, [EventOut.model_validate(e) for e in events]


async def stream(
    job_id: str, owner: str | None, sees_hosts: bool, after_id: int
) -> AsyncIterator[str]:
    """The messages of one watcher until the job ends (see the module doc)."""
    last_job = ""
    quiet_s = 0.0
    while True:
        job, events = await run_in_threadpool(_read, job_id, owner, sees_hosts, after_id)
        out = [message("job_event", e.model_dump_json(), e.id) for e in events]
        after_id = events[-1].id if events else after_id
        state = job.model_dump_json()
        if state != last_job:
            out.append(message("job", state))
            last_job = state
        if job.status in TERMINAL_STATUSES and len(events) < BATCH:
            out.append(message("end", state))
            yield "".join(out)
            return
        if out:
            yield "".join(out)
            quiet_s = 0.0
        elif quiet_s >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_s = 0.0
        await anyio.sleep(POLL_S)
        quiet_s += POLL_S
