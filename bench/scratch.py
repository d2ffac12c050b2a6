"""A throwaway service environment for one benchmark run: a migrated Postgres database of
its own, the benchmarks' Redis index (15, which the tests never use), a fresh DGPO_HOME.
"""

import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

REPO = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("DGPO_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DGPO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


@contextmanager
def scratch_service() -> Iterator[dict[str, str]]:
    """Set DGPO_DATABASE_URL, DGPO_BROKER_URL and DGPO_HOME in `os.environ` (and yield
    them for child processes); afterwards drop the database and flush the Redis index."""
    name = f"dgpo_bench_{os.getpid()}_{secrets.token_hex(2)}"
    server = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    env = {
        "DGPO_DATABASE_URL": f"{server}/{name}",
        "DGPO_BROKER_URL": REDIS_URL,
        "DGPO_HOME": tempfile.mkdtemp(prefix="dgpo_bench_"),
    }
    os.environ.update(env)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()  # messages an interrupted run left behind
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        subprocess.run(["alembic", "upgrade", "head"], cwd=REPO, check=True, capture_output=True)
        yield env
    finally:
        from store import db

        db.reset()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        broker.flushdb()  # the run messages no worker consumed
