"""Alembic is the only way the schema changes: upgrade and downgrade on Postgres and SQLite."""

import secrets

import psycopg
from alembic import command
from sqlalchemy import create_engine, inspect

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


def test_upgrade_downgrade_upgrade_on_postgres():
    ensure_postgres()
    name = f"{TEST_DB_URL.rsplit('/', 1)[1]}_mig_{secrets.token_hex(2)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _round_trip(f"{TEST_DB_URL.rsplit('/', 1)[0]}/{name}")
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_downgrade_upgrade_on_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'dgpo.sqlite'}")


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
