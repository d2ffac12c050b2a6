"""`GET /jobs` pages seek through an index: the cursor and the owner/kind filters are
index conditions, so a deep page costs what the first one does (Postgres EXPLAIN)."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from store import job_rows, jobs
from store.models import new_id
from tests.service.helpers import eval_body, train_body
from trainer.spec.jobs import JOB_REQUEST_ADAPTER


@contextmanager
def captured_sql(session: Session) -> Iterator[list[tuple[str, object]]]:
    found: list[tuple[str, object]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        found.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", grab)


@pytest.fixture
def many_jobs(session: Session) -> None:
    """6,000 jobs of three owners, both kinds, analysed so the planner sees their shape."""
    templates = [
        jobs.new_job(JOB_REQUEST_ADAPTER.validate_python(body), None, owner).values
        for body in (train_body(), eval_body())
        for owner in ("team-a", "team-b", "team-c")
    ]
    rows = [{**templates[n % len(templates)], "id": new_id()} for n in range(6000)]
    job_rows.insert_rows(session, rows)
    session.commit()
    session.execute(text("ANALYZE jobs"))
    session.commit()


@pytest.mark.parametrize(
    ("owner", "kinds", "index"),
    [
        ("team-a", [], "ix_jobs_owner_created"),
        ("team-a", ["eval"], "ix_jobs_owner_kind_created"),
        (None, ["eval"], "ix_jobs_kind_created"),
        (None, [], "ix_jobs_created"),
    ],
)
def test_a_deep_page_is_an_index_seek(many_jobs, session, owner, kinds, index):  # type: ignore[no-untyped-def]
    _, cursor = jobs.list_jobs(session, owner=owner, kinds=kinds, limit=400)
    assert cursor is not None
    with captured_sql(session) as found:
        jobs.list_jobs(session, owner=owner, kinds=kinds, cursor=cursor, limit=50)
    statement, parameters = found[-1]
    plan = "\n".join(
        session.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars()
    )
    assert f"Index Scan Backward using {index}" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan
    condition = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "created_at" in condition, plan  # the cursor seeks, it does not filter
