"""Group commit: concurrent submissions share transactions, yet each gets its own answer."""

import asyncio
import gc
from collections import Counter

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy import func, select, text

from service import intake
from store import jobs
from store.errors import IdempotencyMismatch
from store.models import DEFAULT_PRINCIPAL, Job, JobEvent
from tests.conftest import bearer
from tests.service.helpers import broker_messages, train_body
from trainer.spec.jobs import JOB_REQUEST_ADAPTER


def _new(key: str | None = None, **envelope: object) -> jobs.NewJob:
    request = JOB_REQUEST_ADAPTER.validate_python(train_body(**envelope))
    return jobs.new_job(request, key, DEFAULT_PRINCIPAL)


def test_concurrent_submissions_share_transactions_and_each_get_their_job(
    clean_db, redis_url, session
):
    sizes = Histogram("sizes", "batch sizes", registry=CollectorRegistry())
    batcher = intake.SubmitBatcher(max_in_flight=1, max_batch=256, batch_sizes=sizes)

    async def submit_all() -> list[intake.Answer]:
        requests = [
            JOB_REQUEST_ADAPTER.validate_python(train_body(metadata={"n": str(n)}))
            for n in range(40)
        ]
        return await asyncio.gather(*(batcher.submit(r, None, DEFAULT_PRINCIPAL) for r in requests))

    answers = asyncio.run(submit_all())
    jobs_out = [job.model_dump() for job, replayed in answers if not replayed]
    assert [j["metadata"]["n"] for j in jobs_out] == [str(n) for n in range(40)]
    assert len({j["id"] for j in jobs_out}) == 40
    # Rows committed by one transaction share its xmin: 40 jobs, far fewer transactions.
    transactions = session.scalar(text("SELECT count(DISTINCT xmin::text) FROM jobs"))
    assert transactions < 10, transactions
    observed = {sample.name: sample.value for sample in sizes.collect()[0].samples}
    assert (observed["sizes_count"], observed["sizes_sum"]) == (transactions, 40)
    events = session.execute(select(JobEvent.job_id, JobEvent.kind)).all()
    assert sorted(events) == sorted((j["id"], "submitted") for j in jobs_out)
    published = Counter(args[0] for _, args, _ in broker_messages(redis_url, "cpu"))
    assert [published[j["id"]] for j in jobs_out] == [1] * 40  # other tests' may wait too


def test_a_row_the_database_refuses_fails_only_its_own_request(clean_db, redis_url, session):
    good = [_new(metadata={"n": str(n)}) for n in range(3)]
    # The spec refuses NUL since issue 24; set after validation, as a row the database
    # alone refuses (valid JSON, but Postgres cannot store \u0000).
    request = JOB_REQUEST_ADAPTER.validate_python(train_body(metadata={"team": "ab"}))
    request.metadata["team"] = "a\x00b"
    nul = jobs.new_job(request, None, DEFAULT_PRINCIPAL)
    outcomes = intake.submit_batch([good[0], nul, good[1], good[2]])
    assert isinstance(outcomes[1], Exception) and "\\u0000" in str(outcomes[1])
    stored = set(session.scalars(select(Job.id)))
    assert stored == {new.id for new in good}
    for new, outcome in zip(good, [outcomes[0], *outcomes[2:]], strict=True):
        job, replayed = outcome
        assert job.id == new.id and not replayed


def test_duplicate_keys_in_one_batch_make_one_job_and_a_mismatch(clean_db, redis_url, session):
    first, same, other = _new("k"), _new("k"), _new("k", total_steps=9)
    outcomes = jobs.insert_jobs(session, [first, same, other])
    (job, replayed), (again, replayed_again) = outcomes[0], outcomes[1]
    assert (job["id"], replayed) == (first.id, False)
    assert (again["id"], replayed_again) == (first.id, True)
    assert isinstance(outcomes[2], IdempotencyMismatch)
    assert session.scalar(select(func.count()).select_from(Job)) == 1
    assert session.scalar(select(func.count()).select_from(JobEvent)) == 1


def test_a_submitted_job_is_written_once_by_one_transaction(client, tokens, session):
    """The row says it was handed to the broker (`enqueued_at`) from its insert on, so
    nothing rewrites it after the publish: the job and its `submitted` event share the
    insert's transaction, and the 201 carries the stamp the row holds."""
    created = client.post("/jobs", json=train_body(), headers=bearer(tokens["submit"]))
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["enqueued_at"] == job["created_at"]
    xmins = session.execute(
        text(
            "SELECT (SELECT xmin::text FROM jobs WHERE id = :id),"
            " (SELECT xmin::text FROM job_events WHERE job_id = :id)"
        ),
        {"id": job["id"]},
    ).one()
    assert xmins[0] == xmins[1]


def test_the_serving_app_keeps_the_collector_off_the_request_path(clean_db, redis_url):
    """Submissions parked on a group commit hold tracked objects for a whole commit: with
    the default thresholds a busy server collected every few requests and promoted them
    into full collections, each walking every import-time object (`bench/api.py`: p99
    115 -> 33 ms). While it serves, the app freezes the start-up objects and collects
    its young generation less often; it restores both when it stops."""
    from service.app import YOUNG_GENERATION, create_app

    gc.unfreeze()  # the session's live server (another app) froze them already
    thresholds = gc.get_threshold()
    with TestClient(create_app()):
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == YOUNG_GENERATION
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
