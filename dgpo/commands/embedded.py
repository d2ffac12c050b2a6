"""`dgpo up`: the whole service on one machine with no external services.

The API (uvicorn), one worker and beat run as child processes in ONE process group of
their own, with a SQLite database and a SQLite-backed kombu broker under DGPO_HOME
(the service settings' defaults). Ctrl-C or SIGTERM stops the group — celery's pool
children included — and waits until the group is empty, so nothing is orphaned.
Everything persists under DGPO_HOME, so the next `dgpo up` finds its earlier jobs.
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Annotated, Self

import httpx
import typer

from dgpo.client import LOCAL_TOKEN_FILE
from dgpo.commands._api import console

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 15.0
"""Warm-shutdown time before the group is killed (a running job resumes from its lease)."""


def _die_with_parent() -> None:
    """Children get SIGTERM if `dgpo up` itself is killed with SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def migrate_database() -> None:
    """`alembic upgrade head` on the configured database (creates the SQLite file)."""
    from alembic import command
    from alembic.config import Config

    ini = REPO_ROOT / "alembic.ini"
    if not ini.is_file():
        raise typer.BadParameter(f"{ini} is missing: run `dgpo up` from a clone of the repo")
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


def local_token(home: Path) -> str:
    """The admin token of this machine's embedded service, created on first use."""
    path = home / LOCAL_TOKEN_FILE
    if path.is_file():
        return path.read_text().strip()
    from store.db import get_sessionmaker
    from store.tokens import create_token

    with get_sessionmaker()() as session:
        token = create_token(session, "local-admin", "admin")
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


class EmbeddedStack:
    """API + worker + beat as one process group; a context manager that never leaks it."""

    def __init__(self, home: Path, port: int, slots: int = 1) -> None:
        self.home, self.port, self.slots = home, port, slots
        self.url = f"http://127.0.0.1:{port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pgid: int | None = None
        self.worker_name = f"embedded-{os.getpid()}@local"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, ready_timeout: float = 120.0) -> None:
        """Start the group and return once the API answers AND the worker has registered,
        so a job submitted right after never reads "no live worker serves queue cpu"."""
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        commands = {
            "api": [python, "-m", "uvicorn", "service.app:app", "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "warning"],
            "worker": [python, "-m", "dgpo", "worker", "--name", self.worker_name,
                       "--slots", str(self.slots)],
            "beat": [python, "-m", "dgpo", "beat"],
        }  # fmt: skip
        env = {**os.environ, "DGPO_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        for name, argv in commands.items():
            with (logs / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=REPO_ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=self.pgid or 0,
                    preexec_fn=_die_with_parent,
                )
            self.pgid = self.pgid or proc.pid
            self.procs[name] = proc
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for what, ready in (("the API", self._api_ready), ("the worker", self._worker_ready)):
            while not ready():
                if dead := self.dead_child():
                    raise RuntimeError(self.crash_message(dead))
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{what} was not ready after {timeout:.0f}s; see {self.home}/logs"
                    )
                time.sleep(0.3)

    def _api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).is_success
        except httpx.TransportError:
            return False

    def _worker_ready(self) -> bool:
        """The worker registers once it has imported torch and joined its queue."""
        from store.db import get_sessionmaker
        from store.models import Worker, WorkerStatus

        with get_sessionmaker()() as session:
            worker = session.get(Worker, self.worker_name)
            return worker is not None and worker.status == WorkerStatus.ALIVE

    def dead_child(self) -> str | None:
        """The name of a child that has exited, if any."""
        return next((n for n, p in self.procs.items() if p.poll() is not None), None)

    def crash_message(self, name: str) -> str:
        log = self.home / "logs" / f"{name}.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        code = self.procs[name].returncode
        return f"{name} exited with code {code}; last lines of {log}:\n{tail}"

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """TERM the whole group, KILL it after `grace`, return once no member is left."""
        if self.pgid is None:
            return
        _signal_group(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _group_alive(self.pgid) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        if _group_alive(self.pgid):
            _signal_group(self.pgid, signal.SIGKILL)
        while _group_alive(self.pgid):
            self._reap()
            time.sleep(0.05)
        self._reap()
        self.pgid = None

    def _reap(self) -> None:
        for proc in self.procs.values():
            proc.poll()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while any process (zombies of our own children excluded by reaping) is in it."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def prepare_home(home: Path | None) -> Path:
    """Point this process (and its children) at DGPO_HOME and migrate its database."""
    resolved = (home or Path(os.environ.get("DGPO_HOME", "~/.dgpo"))).expanduser().resolve()
    resolved.mkdir(parents=True, exist_ok=True)
    os.environ["DGPO_HOME"] = str(resolved)
    os.environ["DGPO_EMBEDDED"] = "1"  # SQLite database and broker unless URLs are set
    from config.settings import get_settings
    from store import db

    get_settings.cache_clear()
    db.reset()
    migrate_database()
    return resolved


class _Stop(Exception):
    """Raised from the signal handler to leave the wait loop."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


HomeOption = Annotated[
    Path | None, typer.Option(help="State directory (default $DGPO_HOME or ~/.dgpo)")
]
PortOption = Annotated[int, typer.Option(help="API port on 127.0.0.1")]


def port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:`port` (say, an earlier `dgpo up`)."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def up(home: HomeOption = None, port: PortOption = 8000) -> None:
    """Run the API, one worker and beat here (SQLite + file broker); Ctrl-C stops all."""
    if port_in_use(port):
        console.print(
            f"[red]port {port} is already in use[/red] (another `dgpo up`?): stop it, or "
            "choose another with --port"
        )
        raise typer.Exit(1)
    resolved = prepare_home(home)
    token = local_token(resolved)
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    stack = EmbeddedStack(resolved, port)
    try:
        with console.status("starting the API, a worker (it loads torch first) and beat ..."):
            stack.start()
        typer.echo(f"DGPO is up at {stack.url} (state in {resolved}, logs in {resolved}/logs)")
        typer.echo(f"  dashboard: {stack.url}/ui?token={token}")
        typer.echo(
            f"  CLI:       export DGPO_HOME={resolved} DGPO_API_URL={stack.url} DGPO_TOKEN={token}"
        )
        typer.echo("Press Ctrl-C to stop.")
        while (dead := stack.dead_child()) is None:
            time.sleep(0.5)
        console.print(f"[red]{stack.crash_message(dead)}[/red]")
        raise typer.Exit(1)
    except _Stop:
        console.print("stopping ...")
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        for sig in previous:  # a second Ctrl-C must not interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopped; every child process has exited")
