"""`python -m trainer.supervised [--memory-limit-mb N] MODULE ARGS...`: run MODULE as
`__main__` in a process that dies with the process that started it.

A supervisor that is killed (`kill -9`, OOM killer) runs no cleanup, so its child must
notice by itself: on Linux the kernel sends SIGTERM when the parent exits
(`PR_SET_PDEATHSIG`); elsewhere a thread polls `getppid()`. The parent's pid comes in
`DGPO_PARENT_PID` (a parent that died before we armed the signal is caught by comparing
it), and this process puts its own pid there for its children, so torchrun and each of
its ranks can be wrapped the same way and the whole tree goes down together.
"""

import ctypes
import os
import resource
import runpy
import signal
import sys
import threading
import time

PARENT_ENV = "DGPO_PARENT_PID"
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Exit (SIGTERM) as soon as `parent_pid` is no longer this process's parent."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    else:

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def limit_memory(megabytes: int) -> None:
    """Cap this process's (and its children's) address space: a runaway allocation fails
    with MemoryError here instead of waking the OOM killer for the whole machine."""
    limit = megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def supervise(argv: list[str]) -> list[str]:
    """Apply `--memory-limit-mb N` if it leads `argv`, die with the parent, and be the
    parent its own children die with; the rest of `argv`."""
    if argv[:1] == ["--memory-limit-mb"]:
        limit_memory(int(argv[1]))
        argv = argv[2:]
    parent = os.environ.get(PARENT_ENV)
    if parent:
        die_with_parent(int(parent))
    os.environ[PARENT_ENV] = str(os.getpid())
    return argv


def run(argv: list[str]) -> None:
    """Run `argv[0]` as `__main__` with `argv` as its command line."""
    sys.argv = argv
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> None:
    argv = supervise(argv)
    if not argv:
        raise SystemExit("usage: python -m trainer.supervised [--memory-limit-mb N] MODULE ...")
    run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
