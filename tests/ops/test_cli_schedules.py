"""Schedules from the CLI, starting from the example in docs/schedules.md."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "schedules.md"


def dgpo(live_server: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "DGPO_API_URL": live_server, "DGPO_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "dgpo", *args],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_doc_example_schedule_through_create_trigger_patch_delete(
    live_server, tokens, tmp_path: Path
) -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    spec = tmp_path / "nightly.yaml"
    spec.write_text(example)
    token = tokens["submit"]

    created = dgpo(live_server, token, "schedules", "create", str(spec))
    assert created.returncode == 0, created.stdout + created.stderr
    schedule_id = created.stdout.split()[0]

    run = dgpo(live_server, token, "schedules", "trigger", schedule_id)
    assert run.returncode == 0, run.stderr
    job_id = re.search(r"eval job (\S+)", run.stdout).group(1)  # type: ignore[union-attr]
    assert f"dgpo jobs watch {job_id}" in run.stdout and "{" not in run.stdout

    patched = dgpo(live_server, token, "schedules", "patch", schedule_id, "--disable")
    assert patched.returncode == 0, patched.stderr
    assert "False" in patched.stdout and schedule_id in patched.stdout

    deleted = dgpo(live_server, token, "schedules", "delete", schedule_id)
    assert deleted.returncode == 0 and f"deleted schedule {schedule_id}" in deleted.stdout
    assert schedule_id not in dgpo(live_server, token, "schedules", "list").stdout
