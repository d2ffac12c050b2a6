"""Group commit for `POST /jobs`: concurrent submissions share a transaction and a publish.

Every request still returns only after its own row is committed and its run message
sent. A batch simply carries every request that arrived while earlier batches were in
flight: an idle server commits batches of one, a busy one turns N inserts, commits and
broker round trips into one of each (`bench/api.py` measures it).
"""

import asyncio
from dataclasses import dataclass

import anyio.to_thread
from prometheus_client import Histogram

from service.schemas import JobOut
from store import fleet, jobs, quotas
from store.db import get_sessionmaker

Answer = tuple[JobOut, bool]
"""The job as the 201 (or 200) shows it, and whether it was an Idempotency-Key replay."""


@dataclass(frozen=True)
class _Waiting:
    job: jobs.NewJob
    answer: asyncio.Future[Answer]


class SubmitBatcher:
    """Queues submissions and commits them in batches, `max_in_flight` batches at a time.

    Holds no loop-bound state between batches, so one instance serves whichever event
    loop runs the app (uvicorn's, or each TestClient's).
    """

    def __init__(self, max_in_flight: int, max_batch: int, batch_sizes: Histogram) -> None:
        self.max_in_flight, self.max_batch = max_in_flight, max_batch
        self.batch_sizes = batch_sizes
        self._waiting: list[_Waiting] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self, request: jobs.JobRequestModel, idempotency_key: str | None, owner: str
    ) -> Answer:
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(jobs.new_job(request, idempotency_key, owner), answer))
        self._start_batches()
        return await answer

    def _start_batches(self) -> None:
        while self._waiting and self._in_flight < self.max_in_flight:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            self.batch_sizes.observe(len(batch))
            self._in_flight += 1
            task = asyncio.create_task(self._commit(batch))
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _commit(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await anyio.to_thread.run_sync(submit_batch, [w.job for w in batch])
        except Exception as exc:  # database down: every request in the batch gets the error
            outcomes = [exc] * len(batch)
        except asyncio.CancelledError:  # the loop is shutting down, and so are the requests
            for waiting in batch:
                waiting.answer.cancel()
            raise
        finally:
            self._in_flight -= 1
            self._start_batches()
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if waiting.answer.done():  # the client went away; its job is committed anyway
                continue
            if isinstance(outcome, Exception):
                waiting.answer.set_exception(outcome)
            else:
                waiting.answer.set_result(outcome)


def submit_batch(batch: list[jobs.NewJob]) -> list[Answer | Exception]:
    """Insert and publish the batch (`jobs.submit_jobs`) less the entries past their
    principal's queued limit, and answer each request with its job and a warning when no
    live worker serves its queue or has a slot it fits (one thread hop)."""
    with get_sessionmaker()() as session:
        # Read in the insert's transaction: no BEGIN and ROLLBACK of its own.
        served = fleet.served_slots(session)
        refused = quotas.over_queued_limit(session, [new.values["owner"] for new in batch])
        admitted = [new for new, why in zip(batch, refused, strict=True) if why is None]
        inserted = iter(jobs.submit_jobs(session, admitted))
    outcomes = [why or next(inserted) for why in refused]
    return [o if isinstance(o, Exception) else _answer(o, served) for o in outcomes]


def _answer(outcome: jobs.Submitted, served: dict[str, list[int]]) -> Answer:
    job, replayed = outcome
    out = JobOut.model_validate(job)
    nodes = out.resources.get("nodes", 1)
    out.warnings = fleet.queue_warnings([(out.queue, out.gpus, nodes)], served)
    return out, replayed
