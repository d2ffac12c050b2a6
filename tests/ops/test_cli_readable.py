"""What the CLI prints is readable: spec errors name file, line and field; tables fit."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT


def dgpo_local(*args: str, columns: int = 100) -> subprocess.CompletedProcess[str]:
    """The CLI with no API behind it (local validation only)."""
    env = {**os.environ, "COLUMNS": str(columns), "DGPO_API_URL": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-m", "dgpo", *args],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_invalid_spec_lists_file_line_field_and_message(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "kind: train\nmodel:\n  path: tiny\ndataset: {path: toy-digits}\n"
        "optim:\n  lr: -1\nalgorithm:\n  reward: mathh\n"
    )
    out = dgpo_local("jobs", "submit", str(spec))
    assert out.returncode == 2
    assert f"{spec}:6: optim.lr: Input should be greater than 0" in out.stdout
    assert f"{spec}:8: algorithm.reward: Input should be 'math' or 'contains'" in out.stdout
    assert "function-after" not in out.stdout and "tagged-union" not in out.stdout


def test_yaml_syntax_error_names_file_and_line_without_a_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("kind: train\nmodel:\n  path: [tiny\n")
    out = dgpo_local("jobs", "submit", str(spec))
    assert out.returncode == 2
    assert f"{spec}:4:1: YAML syntax error" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr and "<unicode string>" not in out.stdout


def dgpo_api(
    live_server: str, token: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "DGPO_API_URL": live_server, "DGPO_TOKEN": token,
           **(env or {})}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "dgpo", *args],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_tables_fit_100_columns_with_whole_job_ids(live_server, tokens, finished_job) -> None:
    queued = submit(live_server, tokens)
    out = dgpo_api(live_server, tokens["read"], "jobs", "list")
    assert out.returncode == 0, out.stderr
    assert max(map(len, out.stdout.splitlines())) <= 100
    for job_id in (finished_job["id"], queued):
        assert job_id in out.stdout  # whole, on one line: copyable
    assert "100% (step 12/12)" in out.stdout and "0% (step 0/3)" in out.stdout
    assert "…" not in out.stdout

    metrics = dgpo_api(live_server, tokens["read"], "jobs", "metrics", finished_job["id"])
    assert metrics.returncode == 0, metrics.stderr
    assert max(map(len, metrics.stdout.splitlines())) <= 100
    assert "…" not in metrics.stdout and "reward/accuracy" in metrics.stdout
    assert "step 12" in metrics.stdout

    shown = dgpo_api(live_server, tokens["read"], "jobs", "show", finished_job["id"])
    assert "100% (step 12/12)" in shown.stdout and "…" not in shown.stdout
    assert finished_job["id"] in shown.stdout


def submit(live_server: str, tokens: dict[str, str]) -> str:
    import httpx

    from tests.conftest import bearer
    from tests.service.helpers import train_body

    r = httpx.post(f"{live_server}/jobs", json=train_body(), headers=bearer(tokens["submit"]))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_submit_prints_the_unserved_queue_warning(live_server, tokens) -> None:
    example = REPO_ROOT / "examples" / "train-gpu-vllm.yaml"
    out = dgpo_api(live_server, tokens["submit"], "jobs", "submit", str(example))
    assert out.returncode == 0, out.stderr
    assert "warning: no live worker serves queue gpu.h100" in out.stderr


def test_evals_compare_fits_100_columns_and_shows_the_steps(live_server, tokens, session) -> None:
    from tests.evals.helpers import add_results, counts, make_job

    a, b = make_job(session), make_job(session)
    add_results(session, a.id, "gsm8k_mini", counts([0] * 30), step=10)
    add_results(session, b.id, "gsm8k_mini", counts([4] * 30), step=20)
    out = dgpo_api(live_server, tokens["read"], "evals", "compare", a.id, b.id)
    assert out.returncode == 0, out.stderr
    assert max(map(len, out.stdout.splitlines())) <= 100
    row = next(line for line in out.stdout.splitlines() if "gsm8k_mini" in line)
    assert row.split()[:5] == ["gsm8k_mini", "30", "0", "1", "1"]
    assert "10→20" in row and "improvement" in row


FAILURE = (
    "logging.wandb: needs the 'wandb' package, not installed: pip install 'dgpo[wandb]'; "
    "dataset.path: needs the 'datasets' package, not installed: pip install 'dgpo[data]'; "
    "the attempt ended before its first step and will not be retried: END-OF-ERROR"
)


@pytest.fixture
def failed_job(client, tokens, session) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from store.models import Job
    from tests.ops.conftest import finish_job
    from tests.ops.conftest import submit as submit_body
    from tests.service.helpers import train_body

    job = submit_body(client, tokens["submit"], train_body(total_steps=12))
    finish_job(session, job["id"], status="failed")
    session.get(Job, job["id"]).error = FAILURE
    session.commit()
    return job


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_show_of_a_failed_job_keeps_its_labels_and_wraps_the_whole_error(
    live_server, tokens, failed_job, columns
) -> None:  # type: ignore[no-untyped-def]
    env = {"COLUMNS": str(columns)}
    out = dgpo_api(live_server, tokens["read"], "jobs", "show", failed_job["id"], env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(map(len, lines)) <= columns
    labels = [line.split()[0] for line in lines if line.strip()]
    assert {"id", "status", "progress", "error"} <= set(labels)
    assert all(word in out.stdout for word in FAILURE.split())  # wrapped, not cut
    assert "'dgpo[data]'" in out.stdout and "END-OF-ERROR" in out.stdout


def test_api_errors_keep_the_extras_name_in_install_hints(
    live_server, tokens, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from config.settings import get_settings

    monkeypatch.setitem(sys.modules, "wandb", None)  # not importable, for the embedded API
    monkeypatch.setenv("DGPO_EMBEDDED", "1")
    get_settings.cache_clear()
    spec = tmp_path / "wandb.yaml"
    spec.write_text(
        "kind: train\nmodel: {path: tiny}\ndataset: {path: toy-digits}\n"
        "rollout: {max_prompt_tokens: 64, max_response_tokens: 8}\n"
        "logging: {wandb: {enabled: true}}\n"
    )
    try:
        out = dgpo_api(live_server, tokens["submit"], "jobs", "submit", str(spec))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert out.returncode == 1
    assert "pip install 'dgpo[wandb]'" in out.stderr


def test_watch_of_a_queued_job_says_what_it_waits_for_when_piped(live_server, tokens) -> None:  # type: ignore[no-untyped-def]
    job_id = submit(live_server, tokens)
    env = {**os.environ, "COLUMNS": "100", "DGPO_API_URL": live_server,
           "DGPO_TOKEN": tokens["read"]}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "dgpo", "jobs", "watch", job_id],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while not any("queued: waiting" in line for line in lines):  # events come first
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                break
            lines.append(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    (status,) = [line for line in lines if "queued: waiting" in line] or [""]
    assert "queued: waiting for a worker on queue cpu" in status, lines
    assert status.startswith(job_id[:8]), lines


def test_watch_when_piped_ends_with_its_verdict_on_a_line_of_its_own(
    live_server, tokens, finished_job
) -> None:  # type: ignore[no-untyped-def]
    out = dgpo_api(live_server, tokens["read"], "jobs", "watch", finished_job["id"])
    assert out.returncode == 0, out.stderr
    assert f"{finished_job['id']} succeeded" in out.stdout.splitlines()
    assert "step 12" in out.stdout  # the last metrics, printed once


def test_typo_keys_name_the_close_match(tmp_path: Path) -> None:
    spec = tmp_path / "typos.yaml"
    spec.write_text(
        "kind: train\nmodel: {path: tiny}\ndataset: {path: toy-digits}\n"
        "lr: 1.0e-5\ngroup_size: 4\noptim: {lrr: 1.0e-5}\n"
    )
    out = dgpo_local("jobs", "submit", str(spec))
    assert out.returncode == 2
    assert f"{spec}:4: lr: Extra inputs are not permitted (did you mean optim.lr?)" in out.stdout
    assert f"{spec}:5: group_size: Extra inputs are not permitted (did you mean " \
        "algorithm.group_size?)" in out.stdout  # fmt: skip
    assert f"{spec}:6: optim.lrr: Extra inputs are not permitted (did you mean optim.lr?)" in (
        out.stdout
    )
