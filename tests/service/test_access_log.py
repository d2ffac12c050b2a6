"""A dashboard token sent in the URL never reaches uvicorn's access log (issue 24, 8)."""

import subprocess

import httpx

from tests.service.helpers import api_server


def test_the_access_log_holds_no_dashboard_token(clean_db: str, redis_url: str) -> None:
    logs = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with api_server(**logs) as (base, server):
        httpx.get(f"{base}/ui?status=queued&token=dgpo_SECRET123&x=1", timeout=10)
    output, _ = server.communicate(timeout=30)
    assert "GET /ui?status=queued&token=<redacted>&x=1" in output, output[-2000:]
    assert "SECRET123" not in output
