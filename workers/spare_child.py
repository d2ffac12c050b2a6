"""A slot's spare: the next attempt's child, started ahead so that its imports are done.

Python's imports of torch, transformers and the trainer took every attempt 9 s at load
average 2.6 on 2 cores, 17-19 s at 9-13 (`bench/dispatch.py`), before it read the model.
So after each single-process attempt has started, the slot starts the next one's process
(`trainer.supervised_spare`), which imports them and waits; the next attempt is handed
to it over its stdin instead of starting a fresh process. The handed spare is that
attempt's child in every way a fresh one is (`workers.child.Child`):

- its own process group, started with `start_new_session`: cancel and lease loss
  terminate all of it;
- dies with the slot (`PR_SET_PDEATHSIG`) from its first instruction, and its own
  children with it;
- the attempt's environment from its start (the slot's `CUDA_VISIBLE_DEVICES`,
  `OMP_NUM_THREADS` for one process): a spare whose environment or memory limit is not
  the one the attempt would get now is stopped, and the attempt starts a fresh child;
- one attempt per process, which then exits: nothing loaded by one job is there for the
  next (only code is imported ahead; the attempt reads its model itself, from the page
  cache when an earlier attempt read it);
- its output goes to the attempt's log from the hand-over on, so the failure cause and
  the output tail are read as before.

A spare that died while waiting is replaced: the attempt that finds it dead starts a
fresh child and the slot a new spare. So does one that dies after it was handed the
attempt but before it said it took it (`Handed`): killed while it still imports, or
found alive where `kill -9` left it dying (its main thread exited, the others still
free its memory: its stdin still takes the attempt). It never ran the attempt, which
must not be charged for it. Attempts of several processes (torchrun) start
fresh and leave the spare for the next single-process one. `DGPO_SPARE_CHILD=false`
turns this off. The spare's own output (its imports) is `$DGPO_HOME/spares/<slot pid>.log`;
its command line names no job: the slot logs which spare took which attempt.
"""

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from config.settings import get_settings
from config.worker_settings import WorkerSettings
from trainer.distributed.launch import Rendezvous
from trainer.supervised_spare import TOOK
from workers.child import Child, child_command, child_env, wrapper_command

log = logging.getLogger(__name__)

SPARE_MODULE = "trainer.supervised_spare"


@dataclass
class Spare:
    """A started `trainer.supervised_spare` and what it was started with."""

    child: Child
    env: dict[str, str]
    memory_limit_mb: int | None
    started: float

    @classmethod
    def start(cls, env: dict[str, str], memory_limit_mb: int | None) -> "Spare":
        log_path = Path(get_settings().home) / "spares" / f"{os.getpid()}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_bytes(b"")  # one spare's output at a time
        argv = wrapper_command(SPARE_MODULE, memory_limit_mb)
        child = Child.start(argv, log_path, env=env, stdin=subprocess.PIPE)
        return cls(child, env, memory_limit_mb, time.monotonic())

    def hand(
        self, command: list[str], log_path: Path, env: dict[str, str], memory_limit_mb: int | None
    ) -> Child | None:
        """This spare as the child running `command`, its output in `log_path`; None
        (and it is stopped) when it was started with another environment or memory limit
        than `env` and `memory_limit_mb`, or died before it could take the attempt."""
        proc = self.child.proc
        assert proc.stdin is not None
        differ = sorted(k for k in env.keys() | self.env.keys() if env.get(k) != self.env.get(k))
        if differ or self.memory_limit_mb != memory_limit_mb:
            what = ", ".join(differ) or "its memory limit"
            log.info("the spare child %d was started with another %s; stopped", proc.pid, what)
            self.child.terminate(0.0)
            return None
        if proc.poll() is None:
            handed_at = log_path.stat().st_size if log_path.exists() else 0
            try:
                proc.stdin.write(json.dumps({"argv": command, "log": str(log_path)}).encode())
                proc.stdin.write(b"\n")
                proc.stdin.close()
            except BrokenPipeError:
                proc.wait()
            else:
                age = time.monotonic() - self.started
                log.info(
                    "the attempt runs in the spare child %d, started %.1f s ago", proc.pid, age
                )
                return Handed(proc, log_path, handed_at)
        log.warning(
            "the spare child %d exited (code %s) before it was used; starting a fresh one. "
            "Its output ended: %s",
            proc.pid,
            proc.returncode,
            self.child.log_tail()[-1000:],
        )
        return None


class Handed(Child):
    """A spare handed an attempt: it runs it once it says so on the attempt's log."""

    def __init__(self, proc: "subprocess.Popen[bytes]", log_path: Path, handed_at: int) -> None:
        super().__init__(proc, log_path)
        self.handed_at = handed_at
        """The log's size at the hand-over: a retried attempt appends to the same log."""

    def started_attempt(self) -> bool:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.handed_at)
                return f"pre-started child {self.pid} {TOOK}".encode() in f.read()
        except FileNotFoundError:  # it died before it opened the log
            return False


_spare: Spare | None = None
"""This slot's spare (the slot is a process: Celery's pool process)."""


def start_attempt(
    command: list[str],
    log_path: Path,
    *,
    nproc: int,
    threads: int,
    settings: WorkerSettings,
    rendezvous: Rendezvous | None = None,
) -> Child:
    """The started child of an attempt running `command` (`[MODULE, ARG...]`) in `nproc`
    processes with `threads` CPU threads each (this node's, joining a multi-node job's
    others at `rendezvous`): this slot's spare when it fits, else a fresh child; then the
    next spare."""
    global _spare
    env, memory = child_env(threads), settings.child_memory_limit_mb
    if not settings.spare_child or nproc > 1 or rendezvous is not None:
        argv = child_command(
            command[0], command[1:], nproc=nproc, memory_limit_mb=memory, rendezvous=rendezvous
        )
        return Child.start(argv, log_path, env=env)
    spare, _spare = _spare, None
    child = spare.hand(command, log_path, env, memory) if spare is not None else None
    if child is None:
        child = start_fresh(command, log_path, threads=threads, settings=settings)
    try:
        _spare = Spare.start(env, memory)
    except Exception:  # the attempt's child runs already: it must be supervised regardless
        log.exception("could not start a spare child; the next attempt starts a fresh one")
    return child


def start_fresh(
    command: list[str], log_path: Path, *, threads: int, settings: WorkerSettings
) -> Child:
    """A fresh single-process child of an attempt, as `start_attempt`'s (when the spare
    it was handed died before it took it: `Child.started_attempt`)."""
    argv = child_command(
        command[0], command[1:], nproc=1, memory_limit_mb=settings.child_memory_limit_mb
    )
    return Child.start(argv, log_path, env=child_env(threads))
