"""`dgpo up`: API + worker + beat with SQLite and a server-less broker; clean Ctrl-C.

Runs the real command in a subprocess with no Postgres or Redis configured, submits a
job through the REST API, checks a worker picked it up, stops the stack with SIGINT
(as Ctrl-C does), proves no descendant survived, and restarts it on the same DGPO_HOME
to find the earlier job.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgpo.client import LOCAL_TOKEN_FILE, DgpoClient
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc), zombies excluded."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Up:
    """`dgpo up` in a subprocess, started and stopped like a person at a terminal."""

    def __init__(self, home: Path, port: int) -> None:
        env = {
            k: v for k, v in os.environ.items() if k not in ("DGPO_DATABASE_URL", "DGPO_BROKER_URL")
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dgpo", "up", "--home", str(home), "--port", str(port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.output: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "Press Ctrl-C" in line:
                return
        raise AssertionError("dgpo up exited early:\n" + "".join(self.output))

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, "".join(self.output) + out


def test_up_runs_jobs_stops_without_orphans_and_keeps_jobs_across_restarts(tmp_path):
    home, port = tmp_path / "home", free_port()
    up = Up(home, port)
    try:
        token = (home / LOCAL_TOKEN_FILE).read_text().strip()
        api = DgpoClient(f"http://127.0.0.1:{port}", token)
        job = api.submit_job(
            {"kind": "eval", "model": {"path": str(tmp_path / "no-model")}, "benchmarks": ["gsm8k"]}
        )
        # The model does not exist, so the job fails fast: proof that the worker got the
        # message through the server-less broker and reported back to SQLite.
        finished = api.wait_for_job(job["id"], timeout=180, poll=0.5)
        assert finished["status"] == "failed" and finished["attempt"] >= 1
        assert {w["id"] for w in api.workers()}  # the worker registered itself
        family = _descendants(up.proc.pid)
        assert len(family) >= 3  # uvicorn, celery worker (+ pool child), beat
    finally:
        code, output = up.interrupt()
    assert code == 0, output
    assert "every child process has exited" in output
    deadline = time.monotonic() + 5
    while (survivors := {p for p in family if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors, f"orphans left behind: {survivors}"

    again = Up(home, port)
    try:
        jobs = DgpoClient(f"http://127.0.0.1:{port}", token).list_jobs()["items"]
        assert [j["id"] for j in jobs] == [job["id"]]
    finally:
        code, output = again.interrupt()
    assert code == 0, output
