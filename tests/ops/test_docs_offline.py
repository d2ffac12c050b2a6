"""`/docs` and `/redoc` render in headless Chromium with the network off: their assets
come from the package, not a CDN."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium missing: apt-get install -y chromium (CI must have it)",
)
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
"""Every host name but the API's fails to resolve: no CDN, as on a machine offline."""


def rendered_dom(url: str, tmp_path: Path) -> str:
    assert CHROMIUM is not None, "CI needs Chromium for this test"
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", OFFLINE,
        "--virtual-time-budget=15000", "--dump-dom", url,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout


def test_swagger_ui_renders_every_route_offline(live_server: str, tmp_path: Path) -> None:
    dom = rendered_dom(f"{live_server}/docs", tmp_path)
    for path in ("/jobs", "/jobs/{job_id}", "/schedules", "/queue"):
        assert f'class="opblock-summary-path" data-path="{path}"' in dom


def test_redoc_renders_offline(live_server: str, tmp_path: Path) -> None:
    dom = rendered_dom(f"{live_server}/redoc", tmp_path)
    assert "Submit DGPO train and eval jobs" in dom  # the description, drawn by ReDoc's JS
    assert "submit_job_jobs_post" in dom or "Submit Job" in dom
