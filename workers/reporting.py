"""The trainer callback that turns a run into fenced Postgres writes (`store.reports`).

Metrics are buffered and written in batches; the buffer is always flushed with a
checkpoint's row, so every step a checkpoint covers is durable before anyone can resume
from it, and only once: a checkpoint right after a flush writes no metrics of its own.
"""

import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from config.worker_settings import WorkerSettings
from store import leases, reports
from store.db import retrying
from store.leases import Lease, LeaseLost
from trainer.reporting.callbacks import Callback, CheckpointInfo
from trainer.reporting.channel import Report
from trainer.results import BenchmarkResult
from workers.leases import LeaseKeeper

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _finite(value: float) -> float | None:
    """JSONB refuses NaN/inf; store them as null (the trainer also counts skipped steps)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _survives_reconnects(hook: Callable[P, R]) -> Callable[P, R]:
    """Retry a hook whose database write hit a lost connection (each try is one fenced
    transaction, and every hook is safe to repeat: upserts, or an event at worst twice)."""

    @functools.wraps(hook)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return retrying(lambda: hook(*args, **kwargs), f"reporting {hook.__name__}")

    return wrapper


class DbReporter(Callback):
    """Reports one attempt of a train job; every write is fenced by the attempt's lease
    and retried across lost database connections."""

    def __init__(
        self,
        lease: Lease,
        settings: WorkerSettings,
        *,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.lease, self.settings, self.keeper = lease, settings, keeper
        self.stop_reason: leases.StopReason | None = None
        self._buffer: dict[int, dict[str, Any]] = {}
        self._last_flush = time.monotonic()
        self._last_poll = 0.0
        self._start_step = 0
        self._total_steps = 0
        self._t0 = time.monotonic()
        self._last_step = 0

    def relay(self, report: Report, attempt: int) -> None:
        """Write one record of attempt `attempt`'s report file (idempotently)."""
        key, a = f"{attempt}:{report.seq}", report.args
        if report.hook == "on_train_start":
            self.on_train_start(a["start_step"], a["total_steps"], key=key)
        elif report.hook == "on_step_end":
            self.on_step_end(a["step"], a["metrics"])
        elif report.hook == "on_checkpoint":
            self.on_checkpoint(report.checkpoint(), key=key)
        elif report.hook == "on_eval":
            self.on_eval(a["step"], report.results(), key=key)
        elif report.hook == "on_event":
            self.on_event(a["kind"], a["message"], key=key)
        else:
            raise ValueError(f"report {key} has unknown hook {report.hook!r}")

    # ---- trainer hooks -------------------------------------------------------------

    @_survives_reconnects
    def on_train_start(self, start_step: int, total_steps: int, *, key: str | None = None) -> None:
        self._start_step, self._total_steps, self._last_step = start_step, total_steps, start_step
        self._t0 = time.monotonic()
        reports.start_training(self.lease, start_step, total_steps, key)

    @_survives_reconnects
    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self._check_lease()
        self._buffer[step] = {k: _finite(v) for k, v in metrics.items()}
        self._last_step = step
        due = (
            len(self._buffer) >= self.settings.metrics_batch
            or step >= self._total_steps
            or time.monotonic() - self._last_flush >= self.settings.metrics_flush_s
        )
        if due:
            self._flush()

    @_survives_reconnects
    def on_checkpoint(self, info: CheckpointInfo, *, key: str | None = None) -> None:
        reports.record_checkpoint(
            self.lease,
            step=info.step,
            uri=info.uri,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            key=key,
            metrics=self._buffer,
            progress=self._progress(),
        )
        self._flushed()

    @_survives_reconnects
    def on_eval(
        self, step: int, results: Sequence[BenchmarkResult], *, key: str | None = None
    ) -> None:
        reports.record_eval(self.lease, step, results, f"evaluated at step {step}", key)

    @_survives_reconnects
    def on_event(self, kind: str, message: str, *, key: str | None = None) -> None:
        reports.record_event(self.lease, kind, message, key)

    @_survives_reconnects
    def should_stop(self) -> bool:
        """True once the API asked to cancel or the job is preempted (`stop_reason` says
        which); raises LeaseLost if another attempt took over."""
        self._check_lease()
        now = time.monotonic()
        if self.stop_reason or now - self._last_poll < self.settings.stop_poll_s:
            return self.stop_reason is not None
        self._last_poll = now
        self.stop_reason = leases.stop_asked(self.lease)
        return self.stop_reason is not None

    @property
    def ran_to_end(self) -> bool:
        """Whether the relayed reports reach the run's last step (or it resumed there)."""
        return 0 < self._total_steps <= self._last_step

    # ---- helpers -------------------------------------------------------------------

    @_survives_reconnects
    def flush(self) -> None:
        """Write buffered metrics now (end of run, or before a final status change)."""
        self._flush()

    def _flush(self) -> None:
        """The buffer is emptied once its write committed (a retry after a lost connection
        then writes it again)."""
        if self._buffer:
            reports.write_metrics(self.lease, self._buffer, self._progress())
            self._flushed()

    def _flushed(self) -> None:
        self._buffer.clear()
        self._last_flush = time.monotonic()

    def _progress(self) -> reports.Progress | None:
        """Where the run stands at the last step seen (None before `on_train_start`)."""
        if not self._total_steps:
            return None
        done = self._last_step - self._start_step
        per_step = (time.monotonic() - self._t0) / done if done > 0 else None
        return reports.Progress(
            self._last_step,
            min(1.0, self._last_step / self._total_steps),
            None if per_step is None else per_step * max(0, self._total_steps - self._last_step),
        )

    def _check_lease(self) -> None:
        if self.keeper is not None and self.keeper.lost.is_set():
            raise LeaseLost(f"job {self.lease.job_id}: attempt {self.lease.attempt} lost its lease")
