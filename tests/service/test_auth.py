"""Bearer tokens: 401 without a valid one, 403 when the scope is too low, hashes at rest."""

import hashlib
import os
import subprocess
import sys

from sqlalchemy import select

from store.models import ApiToken
from store.tokens import revoke_token
from tests.conftest import REPO_ROOT, bearer
from tests.service.helpers import train_body

CLI = "from dgpo.cli import app; app()"
PROTECTED = [
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", "/jobs/x"),
    ("POST", "/jobs/x/cancel"),
    ("GET", "/jobs/x/events"),
    ("GET", "/jobs/x/metrics"),
    ("GET", "/jobs/x/checkpoints"),
    ("GET", "/jobs/x/results"),
    ("GET", "/queue"),
    ("GET", "/workers"),
    ("GET", "/metrics"),
]


def test_every_endpoint_but_health_needs_a_token(client, tokens):
    for method, path in PROTECTED:
        for headers in ({}, bearer("dgpo_not-a-real-token"), {"Authorization": "Basic eDp5"}):
            r = client.request(method, path, headers=headers, json=train_body())
            assert r.status_code == 401, (method, path, headers)
            assert r.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"


def test_read_token_cannot_submit_or_cancel(client, tokens):
    job = client.post("/jobs", json=train_body(), headers=bearer(tokens["submit"])).json()
    r = client.post("/jobs", json=train_body(), headers=bearer(tokens["read"]))
    assert r.status_code == 403
    assert "has scope 'read'; this needs 'submit' or higher" in r.json()["detail"]
    r = client.post(f"/jobs/{job['id']}/cancel", headers=bearer(tokens["read"]))
    assert r.status_code == 403
    assert client.get(f"/jobs/{job['id']}", headers=bearer(tokens["read"])).status_code == 200


def test_higher_scopes_include_lower_ones(client, tokens):
    for scope in ("submit", "admin"):
        assert client.get("/jobs", headers=bearer(tokens[scope])).status_code == 200
    r = client.post("/jobs", json=train_body(), headers=bearer(tokens["admin"]))
    assert r.status_code == 201


def test_tokens_are_stored_only_as_sha256(session, tokens):
    stored = {t.scope: t.token_hash for t in session.scalars(select(ApiToken))}
    for scope, raw in tokens.items():
        assert stored[scope] == hashlib.sha256(raw.encode()).hexdigest()
        assert raw not in stored.values()


def test_revoked_token_is_refused(client, tokens, session):
    assert client.get("/jobs", headers=bearer(tokens["read"])).status_code == 200
    assert revoke_token(session, "test-read") == 1
    assert client.get("/jobs", headers=bearer(tokens["read"])).status_code == 401


def test_cli_token_create_prints_a_working_token(client, clean_db):
    out = subprocess.run(
        [sys.executable, "-c", CLI, "token", "create", "ci-bot", "--scope", "submit"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=os.environ,
        check=True,
    )
    token = out.stdout.strip()
    assert token.startswith("dgpo_")
    r = client.post("/jobs", json=train_body(), headers=bearer(token))
    assert r.status_code == 201
