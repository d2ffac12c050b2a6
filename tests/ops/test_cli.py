"""The `dgpo` CLI as a user runs it: a subprocess talking HTTP to a real API."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import STEPS, finish_job
from tests.service.helpers import train_body


def dgpo(live_server: str, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DGPO_API_URL": live_server, "COLUMNS": "200"}
    env.pop("DGPO_TOKEN", None)
    if token:
        env["DGPO_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "dgpo", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(train_body(metadata={"team": "cli"})))
    return path


def test_submit_list_show_cancel_round_trip(live_server, tokens, spec_file):
    out = dgpo(live_server, tokens["submit"], "jobs", "submit", str(spec_file), "--json")
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    listed = dgpo(live_server, tokens["read"], "jobs", "list", "--meta", "team=cli")
    assert job["id"] in listed.stdout and "queued" in listed.stdout
    shown = dgpo(live_server, tokens["read"], "jobs", "show", job["id"], "--json")
    assert json.loads(shown.stdout)["job"]["metadata"] == {"team": "cli"}
    cancelled = dgpo(live_server, tokens["submit"], "jobs", "cancel", job["id"])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout


def test_submit_is_retry_safe_with_an_idempotency_key(live_server, tokens, spec_file):
    ids = {
        json.loads(
            dgpo(
                live_server,
                tokens["submit"],
                "jobs",
                "submit",
                str(spec_file),
                "-k",
                "k1",
                "--json",
            ).stdout
        )["id"]
        for _ in range(2)
    }
    assert len(ids) == 1


def test_invalid_spec_is_rejected_locally_with_the_field(live_server, tokens, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(train_body(optim={"lr": -1})))
    out = dgpo(live_server, tokens["submit"], "jobs", "submit", str(bad))
    assert out.returncode == 2 and "optim.lr" in out.stdout


def test_missing_token_explains_how_to_get_one(live_server, spec_file):
    out = dgpo(live_server, None, "jobs", "list")
    assert out.returncode == 1
    assert "401" in out.stderr and "dgpo token create" in out.stderr


def test_show_prints_checkpoints_and_eval_scores(live_server, tokens, finished_job):
    out = dgpo(live_server, tokens["read"], "jobs", "show", finished_job["id"])
    assert out.returncode == 0, out.stderr
    assert "/step_12" in out.stdout and "pass@4" in out.stdout and "0.6" in out.stdout


def test_watch_exits_zero_on_success_and_one_on_failure(
    live_server, tokens, finished_job, client, session
):
    ok = dgpo(live_server, tokens["read"], "jobs", "watch", finished_job["id"])
    assert ok.returncode == 0, ok.stderr
    assert (
        f"{STEPS}/{STEPS}" in ok.stdout and "succeeded" in ok.stdout and "kl/approx_k3" in ok.stdout
    )
    assert re.search(r"\d\d:\d\d:\d\d info +succeeded: finished", ok.stdout)  # its events
    failed = client.post(
        "/jobs", json=train_body(), headers={"Authorization": f"Bearer {tokens['submit']}"}
    ).json()
    finish_job(session, failed["id"], status="failed")
    bad = dgpo(live_server, tokens["read"], "jobs", "watch", failed["id"])
    assert bad.returncode == 1 and "failed" in bad.stdout


def test_metrics_table_and_png_plot(live_server, tokens, finished_job, tmp_path):
    table = dgpo(live_server, tokens["read"], "jobs", "metrics", finished_job["id"], "--last", "2")
    assert table.returncode == 0 and "reward/mean" in table.stdout
    # Nine metrics: one row each, one column per step (the last two).
    header = next(line for line in table.stdout.splitlines() if "metric" in line)
    assert header.split() == ["metric", "step", "11", "step", "12"]
    reward = next(line for line in table.stdout.splitlines() if "reward/mean" in line)
    assert reward.split() == ["reward/mean", "0.21", "0.22"]
    png = tmp_path / "curves.png"
    out = dgpo(
        live_server, tokens["read"], "jobs", "metrics", finished_job["id"], "--plot", str(png)
    )
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
