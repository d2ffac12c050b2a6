"""The /ui dashboard in a real headless Chromium: auth cookie, job list, charts, tables.

Chromium (Debian package `chromium`; .ci/run installs it) loads the page of a finished
job through `?token=`, which exercises the redirect-and-cookie flow a person uses. A
failed job's page is measured at 1280 px through the DevTools protocol (no horizontal
scroll). The screenshots are kept under artifacts/ for a human to look at.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from service.ui.charts import CHART_GROUPS
from store.models import Job
from tests.ops.conftest import STEPS, finish_job, submit
from tests.service.helpers import train_body

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium missing: apt-get install -y chromium (CI must have it)",
)


def chromium(url: str, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "CI needs Chromium for this test"
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1500,1800",
        *mode, url,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)


def test_job_page_renders_every_metric_chart_in_chromium(
    live_server, tokens, finished_job, tmp_path
):
    url = f"{live_server}/ui/jobs/{finished_job['id']}?token={tokens['read']}"
    dom = chromium(url, tmp_path, "--dump-dom").stdout

    charts = re.findall(r'<svg class="chart" data-title="([^"]+)"', dom)
    assert charts == [group.title for group in CHART_GROUPS]
    polylines = re.findall(r'<polyline class="series" data-name="([^"]+)" data-points="(\d+)"', dom)
    assert len(polylines) == 12 and {int(n) for _, n in polylines} == {STEPS}
    # One unit per chart: seconds (time/reward) never share the reward's axis.
    members = {
        title: re.findall(r'data-name="([^"]+)"', svg)
        for title, svg in re.findall(
            r'<svg class="chart" data-title="([^"]+)"(.*?)</svg>', dom, re.S
        )
    }
    assert members["Reward"] == ["reward/mean"]
    assert members["Time per phase (s)"] == ["time/reward", "time/step"]
    assert members["Throughput (tokens/s)"] == ["perf/tokens_per_s"]
    assert "/step_12" in dom and "pass@4=0.600" in dom  # checkpoints and eval results

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard_job.png"
    chromium(url, tmp_path, f"--screenshot={shot}")
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 30_000


def test_jobs_page_lists_status_progress_queue_and_workers(
    live_server, tokens, finished_job, tmp_path
):
    url = f"{live_server}/ui?token={tokens['read']}"
    dom = chromium(url, tmp_path, "--dump-dom").stdout
    row = re.search(
        rf'<tr class="job" data-status="succeeded">.*?{finished_job["id"][:8]}', dom, re.S
    )
    assert row is not None and "100.0%" in dom
    assert 'id="queue"' in dom and 'id="workers"' in dom


def test_token_in_url_becomes_an_httponly_cookie_and_is_required(live_server, tokens):
    with httpx.Client(base_url=live_server) as http:
        assert http.get("/ui").status_code == 401
        login = http.get("/ui", params={"token": tokens["read"], "status": "queued"})
        assert login.status_code == 303
        assert login.headers["location"].endswith("/ui?status=queued")
        assert "HttpOnly" in login.headers["set-cookie"]
        assert http.get("/ui?status=queued").status_code == 200  # the cookie now authenticates
        header = {"Authorization": f"Bearer {tokens['read']}"}
        assert httpx.get(f"{live_server}/ui", headers=header).status_code == 200
        assert http.get("/ui", params={"token": "dgpo_wrong"}).status_code == 401


def _page_widths(url: str, tmp_path: Path, shot: Path) -> tuple[int, int]:
    """(document scroll width, viewport width) of `url` loaded at 1280 px, through the
    DevTools protocol (the pages run no script of their own), and a screenshot."""
    assert CHROMIUM is not None, "CI needs Chromium for this test"
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", f"--user-data-dir={tmp_path / 'cdp-profile'}", "--window-size=1280,900",
        "--hide-scrollbars", "--remote-debugging-port=0", "about:blank",
    ]  # fmt: skip
    browser = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        assert browser.stderr is not None
        line = ""
        while "DevTools listening on" not in line:
            line = browser.stderr.readline()
            assert line, "chromium exited before opening DevTools"
        port = int(re.search(r"ws://[^:]+:(\d+)/", line).group(1))  # type: ignore[union-attr]
        page = next(
            t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"
        )
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 10_000))

            def call(method: str, **params: object) -> dict:
                sent = next(ids)
                ws.send(json.dumps({"id": sent, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv(timeout=60))
                    if reply.get("id") == sent:
                        return reply["result"]

            def evaluate(expression: str) -> object:
                return call("Runtime.evaluate", expression=expression, returnByValue=True)[
                    "result"
                ]["value"]

            call("Page.navigate", url=url)
            deadline = time.monotonic() + 60
            while not (
                evaluate("document.readyState") == "complete"
                and evaluate("location.pathname").startswith("/ui/jobs/")
                and "token" not in str(evaluate("location.search"))
            ):
                assert time.monotonic() < deadline, "page did not load"
                time.sleep(0.2)
            widths = evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            png = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            shot.write_bytes(base64.b64decode(png["data"]))
            return widths[0], widths[1]  # type: ignore[index]
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def test_a_failed_jobs_page_fits_1280_px_without_horizontal_scroll(
    live_server, tokens, client, session, tmp_path
):
    job = submit(client, tokens["submit"], train_body(total_steps=STEPS))
    finish_job(session, job["id"], status="failed")
    row = session.get(Job, job["id"])
    row.error = (
        "trainer process exited with code 1: RuntimeError: CUDA error at "
        + "/".join(f"very_long_directory_name_{i}" for i in range(20))
        + " " + "x" * 300
    )  # fmt: skip
    session.commit()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard_failed_job_1280.png"
    url = f"{live_server}/ui/jobs/{job['id']}?token={tokens['read']}"
    scroll_width, viewport = _page_widths(url, tmp_path, shot)
    assert viewport == 1280
    assert scroll_width <= viewport, f"page is {scroll_width} px wide in a {viewport} px window"
    assert shot.read_bytes()[:4] == b"\x89PNG"
