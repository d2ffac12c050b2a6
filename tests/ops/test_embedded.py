"""`dgpo up` + `dgpo demo`: SQLite, a server-less broker, a real tiny train and eval job.

Runs the real commands in subprocesses with no Postgres, Redis or benchmark directory
configured (only the repository): `dgpo up` serves, `dgpo demo` trains the built-in tiny
model for two steps and evaluates its checkpoint on the packaged `gsm8k_mini` through the
REST API. Then SIGINT (as Ctrl-C) must stop every descendant, and a second
`dgpo up` on the same DGPO_HOME must list the earlier jobs.
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
UNSET = ("DGPO_DATABASE_URL", "DGPO_BROKER_URL", "DGPO_BENCHMARK_DIR")
"""What a newcomer with a fresh clone does not have."""


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
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
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


def test_demo_on_up_then_ctrl_c_leaves_no_orphans_and_restart_finds_the_jobs(tmp_path):
    home, port = tmp_path / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    up = Up(home, port)
    try:
        token = (home / LOCAL_TOKEN_FILE).read_text().strip()
        alive = DgpoClient(url, token).workers(status="alive")
        assert [w["queues"] for w in alive] == [["cpu"]]  # "up" means a worker serves jobs
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
        env |= {"DGPO_API_URL": url, "DGPO_HOME": str(home), "COLUMNS": "120"}
        env.pop("DGPO_TOKEN", None)  # the CLI must find the token `dgpo up` saved
        demo = subprocess.run(
            [sys.executable, "-m", "dgpo", "demo", "--steps", "2", "--problems", "2"],
            env=env, capture_output=True, text=True, timeout=400,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "eval results" in demo.stdout and "avg@2" in demo.stdout
        assert "gsm8k_mini" in demo.stdout
        assert "training reward" in demo.stdout and "over steps 1-1 ->" in demo.stdout
        assert "a worker serves queue 'cpu'" in demo.stdout  # says what it waited for
        # Piped, the progress is plain lines: the eval's line starts its own line.
        assert any(line.startswith("eval: job ") for line in demo.stdout.splitlines())
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

    token = (home / LOCAL_TOKEN_FILE).read_text().strip()
    again = Up(home, port)
    try:
        jobs = DgpoClient(url, token).list_jobs()["items"]
        assert [(j["kind"], j["status"]) for j in jobs] == [
            ("eval", "succeeded"),
            ("train", "succeeded"),
        ]
    finally:
        code, output = again.interrupt()
    assert code == 0, output
