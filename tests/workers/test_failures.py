"""The one-line cause of a dead attempt, from its exit status and output tail."""

import pytest

from trainer.checkpoints import DISK_FULL
from workers.failures import describe_exit, disk_full, fence_line

TRACEBACK = """Traceback (most recent call last):
  File "trainer/data/prompts.py", line 30, in load_rows
    raise FileNotFoundError(f"dataset.path {cfg.path!r} does not exist")
FileNotFoundError: dataset.path '/x/no-such.jsonl' does not exist
"""
TORCHRUN = """[rank0]: RuntimeError: Connection closed by peer
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
trainer.cli FAILED
------------------------------------------------------------
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 4241)
  traceback : Signal 15 (SIGTERM) received by PID 4241
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_09:00:00
  host      : box
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4242)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4242
============================================================
"""


@pytest.mark.parametrize(
    ("returncode", "tail", "limit", "oom", "cause"),
    [
        (1, TRACEBACK, None, False, "trainer process exited with code 1: FileNotFoundError: "
         "dataset.path '/x/no-such.jsonl' does not exist"),
        (-9, "", None, False, "trainer process was killed by SIGKILL"),
        (-9, "", None, True, "trainer process was killed by the kernel OOM killer (SIGKILL): "
         "the host ran out of memory"),
        (-11, "", None, False, "trainer process crashed with a segmentation fault (SIGSEGV)"),
        (-6, "terminate called after throwing an instance of 'std::bad_alloc'", 400, False,
         "trainer process exceeded its memory limit of 400 MiB (RLIMIT_AS, "
         "DGPO_CHILD_MEMORY_LIMIT_MB): out of memory"),
        (1, "ImportError: libtorch_cpu.so: failed to map segment from shared object\n", 400, False,
         "trainer process exceeded its memory limit of 400 MiB (RLIMIT_AS, "
         "DGPO_CHILD_MEMORY_LIMIT_MB): ImportError: libtorch_cpu.so: failed to map segment from "
         "shared object"),
        (1, "RuntimeError: CUDA error: an illegal memory access was encountered\n", None, False,
         "trainer process hit a CUDA error: RuntimeError: CUDA error: an illegal memory access "
         "was encountered"),
        (1, TORCHRUN, None, False, "trainer rank 1 was killed by SIGKILL"),
    ],
)  # fmt: skip
def test_the_cause_names_what_killed_the_child(
    returncode: int, tail: str, limit: int | None, oom: bool, cause: str
) -> None:
    assert describe_exit(returncode, tail, memory_limit_mb=limit, oom_killed=oom) == cause


def test_a_full_disk_and_a_fence_are_told_apart_from_crashes() -> None:
    tail = f"Traceback ...\nOSError: [Errno 28] {DISK_FULL} step 8 under /data/jobs/x; free"
    assert disk_full(tail) and not disk_full("OSError: [Errno 5] Input/output error")
    fenced = "fenced: the supervisor's heartbeat (/j/attempt-1.heartbeat) is 31.0 s old"
    assert fence_line(75, "") == "its heartbeat went stale"
    assert fence_line(1, f"x\n{fenced}\n").startswith("the supervisor's heartbeat")
    assert fence_line(1, "RuntimeError: boom") is None
