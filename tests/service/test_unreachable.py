"""A broker or database that is down: submission still succeeds, readiness says so."""

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config.settings import get_settings
from service.app import create_app
from store import broker, db
from tests.conftest import REPO_ROOT, bearer, free_port
from tests.service.helpers import train_body


@pytest.fixture
def reconfigure(monkeypatch) -> Iterator:  # type: ignore[no-untyped-def]
    """Point one setting elsewhere for a test, then restore the process-wide caches."""

    def apply(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        broker.reset()
        db.reset()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()
    broker.reset()
    db.reset()


def test_broker_down_still_creates_job_and_records_enqueue_failure(client, tokens, reconfigure):
    reconfigure("DGPO_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    r = client.post("/jobs", json=train_body(), headers=bearer(tokens["submit"]))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["enqueued_at"] is None
    events = client.get(f"/jobs/{job['id']}/events", headers=bearer(tokens["read"])).json()
    assert [e["kind"] for e in events] == ["submitted", "enqueue_failed"]
    assert "reconciler" in events[1]["message"]
    stored = client.get(f"/jobs/{job['id']}", headers=bearer(tokens["read"])).json()
    assert stored["enqueued_at"] is None


def test_readyz_is_503_when_database_unreachable_but_healthz_is_ok(clean_db, reconfigure):
    reconfigure("DGPO_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    with TestClient(create_app()) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "database unreachable" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200


def test_readyz_is_503_while_the_schema_is_missing(clean_db, reconfigure, tmp_path):
    reconfigure("DGPO_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with TestClient(create_app()) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "never migrated" in r.json()["detail"], r.text


def test_a_start_without_a_database_url_fails_loudly_unless_embedded(tmp_path):
    """No silent fallback to an empty SQLite file outside `dgpo up`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DGPO_DATABASE_URL", "DGPO_EMBEDDED")}
    env["DGPO_HOME"] = str(tmp_path)
    start = [sys.executable, "-c", "import service.app"]
    failed = subprocess.run(start, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    assert failed.returncode != 0
    assert "DGPO_DATABASE_URL not set" in failed.stderr and "dgpo up" in failed.stderr
    embedded = subprocess.run(
        start, env={**env, "DGPO_EMBEDDED": "1"}, cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert embedded.returncode == 0, embedded.stderr
