"""The one-line cause of a dead attempt, from its exit status and output tail."""

import pytest

from config.spec_policy import SpecRefused, Violation
from trainer.checkpoints import DISK_FULL
from workers.failure_codes import classify
from workers.failures import ChildFailed, describe_exit, fence_line

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


@pytest.mark.parametrize(
    ("cause", "tail", "code"),
    [
        ("trainer process exited with code 1: FileNotFoundError: dataset.path '/x/a.jsonl' "
         "does not exist", "", "data_missing"),
        ("trainer process exited with code 1: FileNotFoundError: benchmark 'amc23' expects "
         "/b/amc23.jsonl; point DGPO_BENCHMARK_DIR at a directory holding amc23.jsonl", "",
         "data_missing"),
        ("trainer process exited with code 1: OSError: Repo id must be in the form 'repo_name' "
         "or 'namespace/repo_name': '/models/nope'.", "", "model_missing"),
        ("trainer process exited with code 1: OSError: We couldn't connect to "
         "'https://huggingface.co' to load the files", "", "hub_unreachable"),
        ("trainer process exited with code 1: ImportError: rollout.engine 'vllm' needs vLLM", "",
         "dependency_missing"),
        ("trainer process exceeded its memory limit of 400 MiB (RLIMIT_AS, "
         "DGPO_CHILD_MEMORY_LIMIT_MB): ImportError: libtorch_cpu.so: failed to map segment", "",
         "out_of_memory"),
        ("trainer process exited with code 1: torch.OutOfMemoryError: CUDA out of memory", "",
         "out_of_memory"),
        ("trainer process hit a CUDA error: RuntimeError: CUDA error: misaligned address", "",
         "cuda_error"),
        ("trainer process was killed by SIGKILL", "", "killed"),
        ("trainer rank 1 crashed with a segmentation fault (SIGSEGV)", "", "killed"),
        ("trainer process exited with code 1: OSError: [Errno 28] "
         f"{DISK_FULL} step 8 under /data/jobs/x; free space", "", "disk_full"),
        ("trainer process exited with code 1: RuntimeError: the loss is NaN", "", "unknown"),
        ("trainer process exited with code 1: no error message; see the output tail",
         "pydantic_core._pydantic_core.ValidationError: 1 validation error for TrainSpec",
         "spec_invalid"),
    ],
)  # fmt: skip
def test_each_cause_gets_the_code_a_client_branches_on(cause: str, tail: str, code: str) -> None:
    assert classify(ChildFailed(cause, tail, 1)) == code


def test_what_the_slot_itself_raised_is_classified_too() -> None:
    missing = Violation(
        ("model", "path"), "'smollm2-135m' needs gguf, not installed: pip install …"
    )
    assert classify(SpecRefused([missing])) == "dependency_missing"
    outside = Violation(("model", "path"), "resolves outside the operator's data roots")
    assert classify(SpecRefused([outside])) == "spec_invalid"
    assert classify(ValueError("model.path is outside the data roots")) == "spec_invalid"
    assert classify(LookupError("train job x has no checkpoint at step 3")) == "model_missing"
    assert classify(RuntimeError("boom")) == "unknown"


def test_a_fence_is_told_apart_from_crashes() -> None:
    fenced = "fenced: the supervisor's heartbeat (/j/attempt-1.heartbeat) is 31.0 s old"
    assert fence_line(75, "") == "its heartbeat went stale"
    assert fence_line(1, f"x\n{fenced}\n").startswith("the supervisor's heartbeat")
    assert fence_line(1, "RuntimeError: boom") is None
