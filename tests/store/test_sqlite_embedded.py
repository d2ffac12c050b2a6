"""The embedded default (SQLite): the same queries work without Postgres."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import jobs
from store.db import make_engine
from store.errors import IdempotencyMismatch
from store.lifecycle import transition
from store.models import JobEvent, JobStatus
from tests.conftest import migrate
from tests.service.helpers import eval_body, train_body
from trainer.spec.jobs import JOB_REQUEST_ADAPTER


def test_submit_filter_page_and_cancel_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'dgpo.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        made = [
            jobs.submit(session, JOB_REQUEST_ADAPTER.validate_python(body), key, "team-a")[0]
            for body, key in [
                (train_body(metadata={"team": "x"}), "a"),
                (eval_body(metadata={"team": "y"}), None),
                (train_body(metadata={"team": "x", "run": "2"}), None),
            ]
        ]
        again, replayed = jobs.submit(
            session,
            JOB_REQUEST_ADAPTER.validate_python(train_body(metadata={"team": "x"})),
            "a",
            "team-a",
        )
        assert replayed and again.id == made[0].id

        team_x, _ = jobs.list_jobs(session, metadata={"team": "x"})
        assert [j.id for j in team_x] == [made[2].id, made[0].id]
        both, _ = jobs.list_jobs(session, metadata={"team": "x", "run": "2"})
        assert [j.id for j in both] == [made[2].id]

        first, cursor = jobs.list_jobs(session, limit=2)
        rest, end = jobs.list_jobs(session, limit=2, cursor=cursor)
        assert [j.id for j in first + rest] == [j.id for j in reversed(made)] and end is None

        transition(session, made[1], JobStatus.RUNNING)
        session.commit()
        assert jobs.cancel(session, made[1].id).status == JobStatus.CANCELLING
        assert jobs.cancel(session, made[0].id).status == JobStatus.CANCELLED
    engine.dispose()


def test_a_group_commit_on_sqlite_inserts_skips_used_keys_and_logs_events(tmp_path):
    url = f"sqlite:///{tmp_path / 'dgpo.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    batch = [
        jobs.new_job(JOB_REQUEST_ADAPTER.validate_python(train_body(total_steps=n)), key, "t")
        for n, key in [(1, "a"), (2, None), (1, "a"), (3, "a")]
    ]
    with Session(engine, expire_on_commit=False) as session:
        first, second, replay, mismatch = jobs.insert_jobs(session, batch)
        assert (first[0]["id"], first[1]) == (batch[0].id, False)
        assert (second[0]["id"], second[1]) == (batch[1].id, False)
        assert (replay[0]["id"], replay[1]) == (batch[0].id, True)
        assert isinstance(mismatch, IdempotencyMismatch)
        events = session.execute(select(JobEvent.job_id, JobEvent.kind)).all()
        assert sorted(events) == sorted([(batch[0].id, "submitted"), (batch[1].id, "submitted")])
    engine.dispose()
