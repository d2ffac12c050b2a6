"""Insert many job rows with their `submitted` events, skipping used Idempotency-Keys.

On Postgres this is one statement whose text never changes: each column travels as one
array through `unnest`, so psycopg prepares the statement once and one round trip writes
jobs and events alike. A multi-row VALUES statement differs for every batch size; building
and parsing it cost more CPU than the database spends on the rows. SQLite, which has no
data-modifying CTEs, runs the portable two-statement form.
"""

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import Job, JobEvent
from store.serialize import dumps

Row = Mapping[str, Any]
"""Column name -> value for one new job (JSON columns hold Python objects)."""

JOBS: Table = Job.__table__  # type: ignore[assignment]
EVENTS: Table = JobEvent.__table__  # type: ignore[assignment]


def insert_rows(session: Session, rows: Sequence[Row]) -> set[str]:
    """Insert `rows` (all with the same columns) in order; the ids actually inserted.

    A row whose Idempotency-Key is taken is skipped (ON CONFLICT DO NOTHING) rather than
    aborting the statement. Runs in the session's transaction; the caller commits.
    """
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        return _insert_postgres(session, rows)
    return _insert_portable(session, rows)


def _insert_postgres(session: Session, rows: Sequence[Row]) -> set[str]:
    columns = tuple(rows[0])
    arrays = {
        name: [dumps(row[name]) for row in rows]
        if isinstance(JOBS.c[name].type, JSON)
        else [row[name] for row in rows]
        for name in columns
    }
    result = session.connection().exec_driver_sql(_unnest_statement(columns), arrays)
    return {job_id for (job_id,) in result}


@cache
def _unnest_statement(columns: tuple[str, ...]) -> str:
    dialect = postgresql.dialect()
    names = ", ".join(columns)
    arrays = ", ".join(
        f"%({name})b::{JOBS.c[name].type.compile(dialect=dialect)}[]" for name in columns
    )
    return (
        f"WITH new_job AS (INSERT INTO {JOBS.name} ({names})"
        f" SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
        " RETURNING id, kind, queue, attempt, created_at),"
        f" submitted AS (INSERT INTO {EVENTS.name} (job_id, ts, kind, message, attempt, data)"
        " SELECT id, created_at, 'submitted', kind || ' job queued on ' || queue, attempt,"
        " '{}' FROM new_job)"
        " SELECT id FROM new_job"
    )


def _insert_portable(session: Session, rows: Sequence[Row]) -> set[str]:
    stmt = sqlite.insert(JOBS).on_conflict_do_nothing().returning(JOBS.c.id)
    inserted = {job_id for (job_id,) in session.execute(stmt, list(rows))}
    if inserted:
        session.execute(
            insert(EVENTS),
            [
                {
                    "job_id": row["id"],
                    "ts": row["created_at"],
                    "kind": "submitted",
                    "message": f"{row['kind']} job queued on {row['queue']}",
                    "attempt": row["attempt"],
                    "data": {},
                }
                for row in rows
                if row["id"] in inserted
            ],
        )
    return inserted
