"""How much an event matters: `info`, `warning` or `error`, read from its kind and data.

The level is a function of what the event says, not a second record of it: the writers
(the store, the workers, the trainer through its report channel) name a kind, and this
one table turns kinds into levels for every reader (the API, the event stream, the
dashboard). A kind not listed is `info`. Python's logging and OpenAI's fine-tuning job
events use the same three names.
"""

from collections.abc import Mapping
from typing import Any, Literal

from store.models import JobStatus

Level = Literal["info", "warning", "error"]

KIND_LEVELS: Mapping[str, Level] = {
    "checkpoint_rejected": "warning",
    "checkpoint_skipped": "warning",
    "dynamic_sampling_short": "warning",
    "enqueue_failed": "warning",
    "hub_push_failed": "warning",
    "regression": "warning",
    "webhook_failed": "error",
}
"""Kinds that are not `info`; `status` events are judged by where they go (below)."""


def event_level(kind: str, data: Mapping[str, Any]) -> Level:
    """A `status` event into `failed` is an error and one back to `queued` from a run (a
    lost worker, a retry) a warning, unless it was preempted; any other kind is what
    `KIND_LEVELS` says."""
    if kind == "status":
        if data.get("to") == JobStatus.FAILED:
            return "error"
        if data.get("to") == JobStatus.QUEUED and data.get("from") != JobStatus.QUEUED:
            return "info" if data.get("preempted") else "warning"
        return "info"
    return KIND_LEVELS.get(kind, "info")
