"""Why an attempt's child died, in one line an operator can act on.

The supervisor knows the exit status, whether the kernel's OOM killer fired in this
cgroup meanwhile, the memory limit it set, and the tail of the child's output (for a
torchrun group, which rank failed first and how: its "Root Cause" block).
"""

import re
import signal
from pathlib import Path

from trainer.reporting.fence import FENCED_EXIT, FENCED_PREFIX

OOM_EVENTS = Path("/sys/fs/cgroup/memory.events")
MEMORY_ERRORS = (
    "MemoryError",
    "Cannot allocate memory",
    "can't allocate memory",
    "bad_alloc",
    "failed to map segment from shared object",  # dlopen's mmap refused (e.g. import torch)
)
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception|Exit)):? ?(.*)$")
_RANK_SIGNAL = re.compile(r"Signal (\d+) \((SIG\w+)\) received by PID")
_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)", re.MULTILINE)


class ChildFailed(RuntimeError):
    """The attempt's child exited without finishing; `cause` is one line, `tail` its output."""

    def __init__(self, cause: str, tail: str, returncode: int) -> None:
        super().__init__(cause)
        self.cause, self.tail, self.returncode = cause, tail, returncode


class ChildFenced(ChildFailed):
    """The child stopped itself: its heartbeat went stale (this supervisor was frozen or
    its lease renewals failed). Not the job's fault: it costs no attempt."""


class GangMemberLost(RuntimeError):
    """Another member of this gang lost its lease (its worker died or never started it):
    the attempt fails for the whole gang (`workers.gang`)."""


def fence_line(returncode: int, tail: str) -> str | None:
    """Why the child fenced itself (`trainer.reporting.fence`), or None if it did not."""
    lines = [line for line in tail.splitlines() if line.startswith(FENCED_PREFIX)]
    if lines:
        return lines[-1].removeprefix(FENCED_PREFIX)
    return "its heartbeat went stale" if returncode == FENCED_EXIT else None


def oom_kills() -> int | None:
    """How many processes the OOM killer has killed in this cgroup (None: not cgroup v2)."""
    try:
        for line in OOM_EVENTS.read_text().splitlines():
            name, _, count = line.partition(" ")
            if name == "oom_kill":
                return int(count)
    except (OSError, ValueError):
        pass
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_exception(tail: str) -> str | None:
    """The last `SomeError: message` line that is not torchrun's own wrapper around it."""
    found = None
    for line in tail.splitlines():
        match = _EXCEPTION.match(line.strip())
        if match and match.group(1) != "ChildFailedError":
            found = line.strip()
    return found


def describe_exit(
    returncode: int, tail: str, *, memory_limit_mb: int | None, oom_killed: bool
) -> str:
    """One line: what killed the child, or the error it exited with."""
    root = tail[tail.rfind("Root Cause") :] if "Root Cause" in tail else ""
    rank = _RANK.search(root)  # torchrun's first failed rank, not the ones it stopped after
    who = f"trainer rank {rank.group(1)}" if rank else "trainer process"
    rank_signal = _RANK_SIGNAL.search(root)
    error = _last_exception(tail)
    if memory_limit_mb is not None and any(m in tail for m in MEMORY_ERRORS):
        return (
            f"{who} exceeded its memory limit of {memory_limit_mb} MiB "
            f"(RLIMIT_AS, DGPO_CHILD_MEMORY_LIMIT_MB): {error or 'out of memory'}"
        )
    if "CUDA" in (error or "") or (error is None and "CUDA error" in tail):
        return f"{who} hit a CUDA error: {error or 'see the output tail'}"
    number = -returncode if returncode < 0 else int(rank_signal.group(1)) if rank_signal else 0
    if number:
        name = _signal_name(number)
        if oom_killed and number == signal.SIGKILL:
            return f"{who} was killed by the kernel OOM killer ({name}): the host ran out of memory"
        if number == signal.SIGSEGV:
            return f"{who} crashed with a segmentation fault ({name})"
        return f"{who} was killed by {name}"
    return (
        f"{who} exited with code {returncode}: {error or 'no error message; see the output tail'}"
    )
