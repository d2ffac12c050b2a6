"""A dashboard token sent in the URL never reaches uvicorn's access log (issue 24, 8)."""

import subprocess
import sys
import time

import httpx

from tests.conftest import free_port


def test_the_access_log_holds_no_dashboard_token(clean_db: str, redis_url: str) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "service.app:app", "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        httpx.get(f"{base}/ui?status=queued&token=dgpo_SECRET123&x=1", timeout=10)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "GET /ui?status=queued&token=<redacted>&x=1" in output, output[-2000:]
    assert "SECRET123" not in output
