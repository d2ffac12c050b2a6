"""The class of an attempt's failure, as a code a client can branch on.

Read from what the supervisor already knows (`workers.failures`): the one-line cause and
the output tail of a dead child, or the exception the slot itself raised while preparing
the attempt. The retry policy (`config.fleet_policy.RetryPolicy`) decides per code
whether another attempt can help. OpenAI's fine-tuning job object carries
`error {code, message, param}`; ours is `{code, message, attempt}`.
"""

import re
from dataclasses import dataclass

from pydantic import ValidationError

from config.spec_policy import SpecRefused
from store.db import is_transient
from trainer.checkpoints import DISK_FULL
from workers.failures import ChildFailed, GangMemberLost

CODES = (
    "spec_invalid",
    "data_missing",
    "model_missing",
    "hub_unreachable",
    "dependency_missing",
    "gpus_unavailable",
    "disk_full",
    "out_of_memory",
    "cuda_error",
    "node_lost",
    "database_transient",
    "timeout",
    "killed",
    "unknown",
)
"""Every code an attempt failure can have (docs/operations.md describes each)."""

_TAIL_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(pattern))
    for code, pattern in (
        ("gpus_unavailable", r"GpusUnavailableError"),
        ("disk_full", re.escape(DISK_FULL)),
        ("out_of_memory", r"OutOfMemoryError|CUDA out of memory|exceeded its memory limit|"
         r"OOM killer"),
        ("cuda_error", r"hit a CUDA error|CUDA error"),
        ("data_missing", r"dataset\.path .* does not exist|benchmark '.*' expects .*; point "
         r"DGPO_BENCHMARK_DIR|benchmark .* not found"),
        ("hub_unreachable", r"couldn't connect to 'https://huggingface\.co'|OfflineModeIsEnabled"),
        ("model_missing", r"Repo id must be in the form|is not a local folder and is not a valid "
         r"model identifier|RepositoryNotFoundError|does not appear to have a file named|"
         r"Incorrect path_or_model_id|has no checkpoint at step"),
        ("dependency_missing", r"ModuleNotFoundError|ImportError|No module named|"
         r"not installed: pip"),
        ("spec_invalid", r"ValidationError|validation error"),
        ("timeout", r"TimeoutError|timed out"),
        ("killed", r"was killed by|segmentation fault"),
    )
)  # fmt: skip
"""First match wins, over the cause line first and then the output tail."""


@dataclass(frozen=True)
class AttemptError:
    """What `error` says on the job and its failure events."""

    code: str
    message: str
    attempt: int

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "attempt": self.attempt}


def classify(exc: BaseException) -> str:
    """The failure code of the exception that ended an attempt."""
    if isinstance(exc, ChildFailed):
        return _from_text(exc.cause) or _from_text(exc.tail) or "unknown"
    if isinstance(exc, GangMemberLost):
        return "node_lost"
    if is_transient(exc):
        return "database_transient"
    if isinstance(exc, SpecRefused):  # the worker's own check of the spec
        return _from_text(str(exc)) or "spec_invalid"
    if isinstance(exc, ValidationError | ValueError):
        return "spec_invalid"
    if isinstance(exc, LookupError | FileNotFoundError):
        return "model_missing"
    if isinstance(exc, ImportError):
        return "dependency_missing"
    return _from_text(f"{type(exc).__name__}: {exc}") or "unknown"


def _from_text(text: str) -> str | None:
    for code, pattern in _TAIL_RULES:
        if pattern.search(text):
            return code
    return None
