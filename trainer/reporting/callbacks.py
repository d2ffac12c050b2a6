"""The only way the outside world sees or steers a run.

The trainer calls these hooks; the CLI logs them to the console and JSONL, the Celery
worker turns them into fenced Postgres writes. Everything here is torch-free.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trainer.results import BenchmarkResult


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint that was written completely (manifest verified, renamed in place)."""

    step: int
    uri: str
    """Directory (local path or fsspec URI) holding the HF model and trainer state."""
    sha256: str
    """sha256 of the manifest, which lists the sha256 of every file."""
    size_bytes: int
    files: Mapping[str, str]
    """Relative file path -> sha256."""


class Callback:
    """Base class with no-op hooks; subclasses override what they need."""

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        """Called once; start_step > 0 when resuming."""

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        """Called after every optimizer step (step numbering starts at 1)."""

    def before_checkpoint(self, step: int) -> None:
        """Called before a checkpoint of `step` is written (a fence may still stop the run)."""

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        """Called after a checkpoint is durably written."""

    def on_eval(self, step: int, results: Sequence[BenchmarkResult]) -> None:
        """Called after a periodic (or final) evaluation."""

    def on_event(self, kind: str, message: str) -> None:
        """Milestones worth a log line (resumed, skipped update, aborted, ...)."""

    def should_stop(self) -> bool:
        """Polled at every step boundary; True ends the run after a final checkpoint."""
        return False


class CallbackList(Callback):
    """Fans every hook out to several callbacks; stops if any asks to."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        for cb in self.callbacks:
            cb.on_train_start(start_step, total_steps)

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_step_end(step, metrics)

    def before_checkpoint(self, step: int) -> None:
        for cb in self.callbacks:
            cb.before_checkpoint(step)

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        for cb in self.callbacks:
            cb.on_checkpoint(info)

    def on_eval(self, step: int, results: Sequence[BenchmarkResult]) -> None:
        for cb in self.callbacks:
            cb.on_eval(step, results)

    def on_event(self, kind: str, message: str) -> None:
        for cb in self.callbacks:
            cb.on_event(kind, message)

    def should_stop(self) -> bool:
        return any(cb.should_stop() for cb in self.callbacks)
