"""Structured JSON logs tagged with the job being worked on.

Every log line written while a job runs carries `job_id` and `attempt`, so one grep
(or one Loki query) shows an attempt's whole story across API, worker and trainer:

    configure_logging()                       # once, at process start
    with job_log_context(job_id, attempt):
        log.info("claimed")   # {"msg": "claimed", "job_id": "...", "attempt": 2, ...}

The context lives in `contextvars`, so it follows asyncio tasks and threads started
under `contextvars.copy_context()`, and never leaks from one job to the next.
Torch-free and database-free: the API, the workers and the CLI can all import it.
"""

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

job_id_var: ContextVar[str | None] = ContextVar("dgpo_job_id", default=None)
attempt_var: ContextVar[int | None] = ContextVar("dgpo_attempt", default=None)

# Attributes every LogRecord has; anything else came through `extra=` and is kept.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


@contextmanager
def job_log_context(job_id: str, attempt: int | None = None) -> Iterator[None]:
    """Tag every log line inside the block with this job and attempt."""
    job_token = job_id_var.set(str(job_id))
    attempt_token = attempt_var.set(attempt)
    try:
        yield
    finally:
        attempt_var.reset(attempt_token)
        job_id_var.reset(job_token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, job_id, attempt, then extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "job_id": job_id_var.get(),
            "attempt": attempt_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str | int | None = None) -> None:
    """Route every logger to stderr as JSON lines; call once at process start.

    Replaces the root handlers (so it is idempotent). The level defaults to
    DGPO_LOG_LEVEL, else INFO.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("DGPO_LOG_LEVEL", "INFO"))
