"""One attempt's process tree: started in its own session, stopped as a whole.

The child is `python -m trainer.supervised ...` (see there: it dies with this process even
on `kill -9`), alone or as torchrun with one rank per GPU. It inherits this slot's
environment, hence its `CUDA_VISIBLE_DEVICES`, with `OMP_NUM_THREADS` set to its share of
the cores (`workers.cpus`): an inherited value is replaced, since it was set for the
worker process, not for one of its slots. Its stdout and stderr go to a log file
whose tail explains a failure.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainer.distributed.launch import Rendezvous, torchrun_command
from trainer.supervised import PARENT_ENV
from workers.cpus import THREAD_ENV

TAIL_CHARS = 4000


def wrapper_command(wrapper: str, memory_limit_mb: int | None) -> list[str]:
    """argv of `python -m wrapper` with the attempt's memory limit, if any."""
    argv = [sys.executable, "-m", wrapper]
    if memory_limit_mb is not None:
        argv += ["--memory-limit-mb", str(memory_limit_mb)]
    return argv


def child_command(
    module: str,
    args: list[str],
    *,
    nproc: int,
    memory_limit_mb: int | None,
    rendezvous: Rendezvous | None = None,
) -> list[str]:
    """argv running `python -m module *args` supervised: one process, or `nproc` ranks
    (this node's, joining the others of a multi-node job at `rendezvous`)."""
    wrapper = wrapper_command("trainer.supervised", memory_limit_mb)
    if nproc <= 1 and rendezvous is None:
        return [*wrapper, module, *args]
    ranks = torchrun_command(nproc, "trainer.supervised", [module, *args], rendezvous)
    return [*wrapper, *ranks[2:]]  # torchrun itself runs under the wrapper too


def child_env(threads: int) -> dict[str, str]:
    """The environment of an attempt's process: this slot's, with `threads` CPU threads."""
    # Plain tracebacks: typer's boxed ones wrap the error line the cause is read from.
    env = {**os.environ, PARENT_ENV: str(os.getpid()), "_TYPER_STANDARD_TRACEBACK": "1"}
    env[THREAD_ENV] = str(threads)
    return env


class Child:
    """A started process group; `terminate` brings all of it down."""

    def __init__(self, proc: "subprocess.Popen[bytes]", log_path: Path) -> None:
        self.proc, self.pid, self.log_path = proc, proc.pid, log_path

    @classmethod
    def start(
        cls, argv: list[str], log_path: Path, *, env: dict[str, str], stdin: int | None = None
    ) -> "Child":
        """Start `argv` in a session of its own, its output appended to `log_path`."""
        with log_path.open("ab") as sink:
            proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        return cls(proc, log_path)

    def poll(self) -> int | None:
        return self.proc.poll()

    def started_attempt(self) -> bool:
        """Whether this process began the attempt: a fresh child from its start."""
        return True

    def terminate(self, grace_s: float) -> str | None:
        """SIGTERM the group, SIGKILL it if still alive `grace_s` later; the last signal
        sent (None if it had exited already)."""
        sent = None
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            sent = sig.name
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        self.reap()
        return sent

    def reap(self) -> None:
        """SIGKILL whatever of the group outlived its leader (ranks, grader or engine
        helpers): nothing of an attempt may survive it."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_CHARS))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
