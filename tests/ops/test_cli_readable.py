"""What the CLI prints is readable: spec errors name file, line and field; tables fit."""

import os
import subprocess
import sys
from pathlib import Path

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


def dgpo_api(live_server: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "DGPO_API_URL": live_server, "DGPO_TOKEN": token}
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
