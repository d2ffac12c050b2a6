"""One engine and session factory per process, built lazily from the settings, and the
retry of work that a lost database connection interrupted."""

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings

log = logging.getLogger(__name__)

T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    """WAL lets readers run beside the single writer; foreign keys are off by default."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`, with pool sizes from settings (SQLite gets its own pragmas)."""
    settings = get_settings()
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=settings.db_pool_pre_ping,
        pool_recycle=settings.db_pool_recycle_s,
    )


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


def reset() -> None:
    """Forget the cached engine (after settings change, e.g. in tests or after fork)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_sessionmaker.cache_clear()
    get_engine.cache_clear()


def schema_revision() -> str | None:
    """The Alembic revision the database is at; raises if it is unreachable or unmigrated."""
    with get_sessionmaker()() as session:
        return session.scalar(text("SELECT version_num FROM alembic_version"))


def is_transient(exc: BaseException) -> bool:
    """A lost or refused connection (restart, failover, terminated backend): worth a retry.

    Anything else (a constraint, a bad value, a bug) fails the same way again.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def retrying(fn: Callable[[], T], what: str, budget_s: float | None = None) -> T:
    """`fn()`, called again with exponential backoff while it fails transiently.

    `fn` must open its own session (each try then gets a fresh, pre-pinged connection)
    and be safe to repeat. Gives up, re-raising, once `budget_s` (default
    `db_retry_budget_s`) has passed.
    """
    budget = get_settings().db_retry_budget_s if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    delay = 0.05
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database connection lost (%s); retrying in %.2fs", what, exc, delay)
        time.sleep(delay)
        delay = min(2 * delay, 2.0)
