"""A trainer that fences itself: it stops when its supervisor stops vouching for it.

The supervisor (`workers.leases.LeaseKeeper`) sets the mtime of a per-attempt heartbeat
file to the start of each lease renewal that succeeded. The trainer checks the file's
age between steps, before each checkpoint and before each report; once it is older than
`timeout_s` (below the lease, so before another attempt can claim the job) the trainer
exits at once (`os._exit(FENCED_EXIT)`): no checkpoint, no report, nothing more in the
job's directory. This holds when the supervisor is frozen (SIGSTOP, a VM pause, a frozen
cgroup, swapping), which `PR_SET_PDEATHSIG` (`trainer.supervised`) does not cover: that
only fires when the supervisor dies.

A step or checkpoint already under way when the file goes stale finishes first (a
checkpoint's own report included: its directory is on disk, and a newer attempt resuming
from it must find its row); the margin `lease - timeout` must cover one (see
docs/operations.md).
"""

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from trainer.reporting.callbacks import Callback
from trainer.results import BenchmarkResult

FENCED_EXIT = 75
"""The trainer's exit status when it fenced itself (EX_TEMPFAIL: not the job's fault)."""
FENCED_PREFIX = "fenced: "
"""Starts the line the trainer prints when it fences itself (torchrun does not pass the
rank's exit status on; the line is in the output either way)."""


class HeartbeatFence(Callback):
    """Exits the process (`FENCED_EXIT`) at any hook once `path` is `timeout_s` old.

    Must come before every callback that writes (first in a `CallbackList`)."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path, self.timeout_s = path, timeout_s

    def check(self) -> None:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            age = float("inf")
        if age > self.timeout_s:
            print(
                f"{FENCED_PREFIX}the supervisor's heartbeat ({self.path}) is {age:.1f} s old, "
                f"over {self.timeout_s:g} s; another attempt may own this job, so this one "
                "stops without writing anything more",
                file=sys.stderr,
                flush=True,
            )
            # At once: no `finally`, no atexit (trackers, engines), no interpreter teardown,
            # which takes seconds with torch loaded and would eat the margin to the lease.
            os._exit(FENCED_EXIT)

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        self.check()

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.check()

    def before_checkpoint(self, step: int) -> None:
        self.check()

    def on_eval(self, step: int, results: Sequence[BenchmarkResult]) -> None:
        self.check()

    def on_event(self, kind: str, message: str) -> None:
        self.check()

    def should_stop(self) -> bool:
        self.check()
        return False
