"""Alembic is the only way the schema changes: upgrade and downgrade on Postgres and SQLite."""

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from alembic import command
from sqlalchemy import Engine, create_engine, inspect, text

from store.models import Base
from tests.conftest import PG_ADMIN_DSN, TEST_DB_URL, alembic_config, ensure_postgres, migrate

TABLES = {t.name for t in Base.metadata.sorted_tables}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    migrate(url)
    assert _tables(url) == TABLES
    migrate(url, "base", down=True)
    assert _tables(url) == set()
    migrate(url)  # and back up again: downgrade left nothing behind
    assert _tables(url) == TABLES


@contextmanager
def _empty_postgres_database() -> Iterator[str]:
    """The URL of a new, empty Postgres database, dropped afterwards."""
    ensure_postgres()
    name = f"{TEST_DB_URL.rsplit('/', 1)[1]}_mig_{secrets.token_hex(2)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{TEST_DB_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_downgrade_upgrade_on_postgres():
    with _empty_postgres_database() as url:
        _round_trip(url)


def test_upgrade_downgrade_upgrade_on_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'dgpo.sqlite'}")


COPIED = ("resources", "gpus", "gpu_type", "total_steps")
"""The columns 0003 drops: they copied the spec."""
JOBS_0002 = [
    # (id, kind, spec, resources, queue, gpus, gpu_type, total_steps)
    ("train", "train", {"total_steps": 5, "resources": {"gpus": 2, "gpu_type": "h100"}},
     {"gpus": 2, "gpu_type": "h100"}, "gpu.h100", 2, "h100", 5),
    ("eval", "eval", {"k": 2, "resources": {"gpus": 0, "gpu_type": "any"}},
     {"gpus": 0, "gpu_type": "any"}, "cpu", 0, "any", None),
    ("bare", "train", {"seed": 1},  # a spec without the copied values: the columns had them
     {"gpus": 1, "gpu_type": "a100"}, "gpu.a100", 1, "a100", 7),
]  # fmt: skip


def _insert_0002_jobs(engine: Engine) -> None:
    with engine.begin() as conn:
        for job_id, kind, spec, resources, queue, gpus, gpu_type, total_steps in JOBS_0002:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, kind, status, spec, priority, resources, queue, gpus,"
                    " gpu_type, metadata, attempt, max_attempts, fencing_token, progress,"
                    " total_steps, created_at, updated_at) VALUES (:id, :kind, 'queued', :spec,"
                    " 0, :resources, :queue, :gpus, :gpu_type, '{}', 0, 3, 0, 0, :total_steps,"
                    " '2026-01-01', '2026-01-01')"
                ),
                {
                    "id": job_id,
                    "kind": kind,
                    "spec": json.dumps(spec),
                    "resources": json.dumps(resources),
                    "queue": queue,
                    "gpus": gpus,
                    "gpu_type": gpu_type,
                    "total_steps": total_steps,
                },
            )


def _jobs(engine: Engine, columns: str) -> dict[str, tuple[Any, ...]]:
    """id -> the values of `columns`, JSON decoded (SQLite returns it as text)."""

    def decoded(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) and value.startswith("{") else value

    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, {columns} FROM jobs")).all()
    return {row[0]: tuple(decoded(value) for value in row[1:]) for row in rows}


def _spec_migration_keeps_the_values(url: str) -> None:
    migrate(url, "0002")
    engine = create_engine(url)
    try:
        _insert_0002_jobs(engine)
        migrate(url, "0003")
        assert not set(COPIED) & {c["name"] for c in inspect(engine).get_columns("jobs")}
        specs = {job_id: spec for job_id, (spec,) in _jobs(engine, "spec").items()}
        for job_id, _, spec, resources, _, _, _, total_steps in JOBS_0002:
            assert specs[job_id]["resources"] == resources
            assert specs[job_id].get("total_steps") == total_steps
            assert {k: v for k, v in specs[job_id].items() if k in spec} == spec
        migrate(url, "0002", down=True)
        restored = _jobs(engine, ", ".join(COPIED))
        for job_id, _, _, resources, _, gpus, gpu_type, total_steps in JOBS_0002:
            assert restored[job_id] == (resources, gpus, gpu_type, total_steps)
    finally:
        engine.dispose()


def test_spec_migration_keeps_every_value_on_sqlite(tmp_path):
    """0003 drops the copies of spec values (filling any spec that lacked them); the
    downgrade fills the columns back from the spec."""
    _spec_migration_keeps_the_values(f"sqlite:///{tmp_path / 'dgpo.sqlite'}")


def test_spec_migration_keeps_every_value_on_postgres():
    with _empty_postgres_database() as url:
        _spec_migration_keeps_the_values(url)


def test_models_match_the_migrations(postgres_url):
    """`alembic check`: a model change without a migration fails here."""
    command.check(alembic_config(postgres_url))


def test_owners_migration_gives_existing_rows_the_default_principal(tmp_path):
    """Rows written under 0001 (no owners) belong to `default` after 0002."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'dgpo.sqlite'}"
    migrate(url, "0001")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, scope, created_at) "
                    "VALUES ('t', 'h', 'read', '2026-01-01')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO jobs (id, kind, status, spec, priority, resources, queue, gpus,"
                    " gpu_type, metadata, idempotency_key, attempt, max_attempts,"
                    " fencing_token, progress, created_at, updated_at) VALUES ('j', 'train',"
                    " 'queued', '{}', 0, '{}', 'cpu', 0, 'any', '{}', 'k', 0, 3, 0, 0,"
                    " '2026-01-01', '2026-01-01')"
                )
            )
        migrate(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT principal FROM api_tokens")).scalar() == "default"
            assert conn.execute(text("SELECT owner FROM jobs")).scalar() == "default"
    finally:
        engine.dispose()


def test_readyz_schema_revision_is_the_alembic_head(postgres_url):
    from alembic.script import ScriptDirectory

    from store.models import SCHEMA_REVISION

    assert ScriptDirectory.from_config(alembic_config(postgres_url)).get_current_head() == (
        SCHEMA_REVISION
    )
