"""The trainer callback that turns a run into fenced Postgres writes.

Every write is idempotent on a natural key, so replaying a record the database already
holds (a supervisor that crashed after the commit but before it moved its cursor, see
`workers.relay`) changes nothing: metrics upsert per (job, step), checkpoints per
(job, step), eval results per (job, benchmark, step), and events carry the key of the
report that produced them (`data.report`, "<attempt>:<seq>") and are added only once.
A resumed attempt re-running steps after its checkpoint overwrites their metrics. The
metric buffer is always flushed before a checkpoint row is written, so every step a
checkpoint covers is durable before anyone can resume from it.
"""

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.db import retrying
from store.lifecycle import append_event
from store.models import Checkpoint, EvalResult, Job, JobEvent, JobStatus, Metric, utcnow
from trainer.reporting.callbacks import Callback, CheckpointInfo
from trainer.reporting.channel import Report
from trainer.results import BenchmarkResult
from workers.leases import Lease, LeaseKeeper, LeaseLost, fenced
from workers.settings import WorkerSettings

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _finite(value: float) -> float | None:
    """JSONB refuses NaN/inf; store them as null (the trainer also counts skipped steps)."""
    value = float(value)
    return value if math.isfinite(value) else None


def upsert(
    session: Session,
    model: type,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE on Postgres and SQLite alike."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(model).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={col: stmt.excluded[col] for col in update}
    )
    session.execute(stmt)


def append_event_once(
    session: Session,
    job: Job,
    kind: str,
    message: str,
    data: dict[str, Any] | None = None,
    key: str | None = None,
) -> None:
    """`append_event`, skipped when an event with the same report `key` exists already."""
    if key is not None:
        seen = session.scalar(
            select(JobEvent.id)
            .where(JobEvent.job_id == job.id, JobEvent.data["report"].as_string() == key)
            .limit(1)
        )
        if seen is not None:
            return
        data = {**(data or {}), "report": key}
    append_event(session, job, kind, message, data)


def record_eval(
    session: Session,
    job: Job,
    step: int | None,
    results: Sequence[BenchmarkResult],
    message: str,
    key: str | None = None,
) -> None:
    """Upsert the eval results (one row per benchmark and step) and an `eval` event."""
    rows = [
        {
            "job_id": job.id,
            "benchmark": r.benchmark,
            "step": step,
            "k": r.k,
            "scores": dict(r.scores),
            "per_problem": {"problems": [dataclasses.asdict(p) for p in r.per_problem]},
            "created_at": utcnow(),
        }
        for r in results
    ]
    upsert(
        session, EvalResult, rows, ["job_id", "benchmark", "step"], ["k", "scores", "per_problem"]
    )
    summary = {r.benchmark: r.scores for r in results}
    append_event_once(session, job, "eval", message, summary, key)


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
        self.stop_requested = False
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
        with fenced(self.lease) as (session, job):
            job.current_step = start_step
            job.progress = start_step / total_steps
            msg = f"attempt {self.lease.attempt}: steps {start_step + 1}..{total_steps}"
            data = {"start_step": start_step, "total_steps": total_steps}
            append_event_once(session, job, "train_started", msg, data, key)

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
            with fenced(self.lease) as (session, job):
                self._flush(session, job)
            self._buffer.clear()

    @_survives_reconnects
    def on_checkpoint(self, info: CheckpointInfo, *, key: str | None = None) -> None:
        with fenced(self.lease) as (session, job):
            self._flush(session, job)
            row = {
                "job_id": job.id,
                "step": info.step,
                "uri": info.uri,
                "sha256": info.sha256,
                "size_bytes": info.size_bytes,
                "attempt": self.lease.attempt,
                "created_at": utcnow(),
            }
            upsert(session, Checkpoint, [row], ["job_id", "step"], ["uri", "sha256", "size_bytes"])
            _forget_pruned(session, job.id)
            append_event_once(
                session,
                job,
                "checkpoint",
                f"checkpoint at step {info.step}: {info.uri}",
                {"step": info.step, "sha256": info.sha256, "size_bytes": info.size_bytes},
                key,
            )
        self._buffer.clear()

    @_survives_reconnects
    def on_eval(
        self, step: int, results: Sequence[BenchmarkResult], *, key: str | None = None
    ) -> None:
        with fenced(self.lease) as (session, job):
            record_eval(session, job, step, results, f"evaluated at step {step}", key)

    @_survives_reconnects
    def on_event(self, kind: str, message: str, *, key: str | None = None) -> None:
        with fenced(self.lease) as (session, job):
            append_event_once(session, job, kind, message, None, key)

    @_survives_reconnects
    def should_stop(self) -> bool:
        """True once the API asked to cancel; raises LeaseLost if another attempt took over."""
        self._check_lease()
        now = time.monotonic()
        if self.stop_requested or now - self._last_poll < self.settings.stop_poll_s:
            return self.stop_requested
        self._last_poll = now
        with fenced(self.lease) as (_, job):
            self.stop_requested = job.status == JobStatus.CANCELLING
        return self.stop_requested

    # ---- helpers -------------------------------------------------------------------

    @_survives_reconnects
    def flush(self) -> None:
        """Write buffered metrics now (end of run, or before a final status change)."""
        if self._buffer:
            with fenced(self.lease) as (session, job):
                self._flush(session, job)
            self._buffer.clear()

    def _check_lease(self) -> None:
        if self.keeper is not None and self.keeper.lost.is_set():
            raise LeaseLost(f"job {self.lease.job_id}: attempt {self.lease.attempt} lost its lease")

    def _flush(self, session: Session, job: Job) -> None:
        """Upsert the buffered metrics; the caller empties the buffer once that committed
        (a retry after a lost connection then writes them again)."""
        now = utcnow()
        rows = [
            {"job_id": job.id, "step": step, "values": values, "ts": now}
            for step, values in sorted(self._buffer.items())
        ]
        upsert(session, Metric, rows, ["job_id", "step"], ["values", "ts"])
        self._last_flush = time.monotonic()
        done = self._last_step - self._start_step
        if self._total_steps:
            job.current_step = self._last_step
            job.progress = min(1.0, self._last_step / self._total_steps)
            if done > 0:
                per_step = (time.monotonic() - self._t0) / done
                job.eta_seconds = per_step * max(0, self._total_steps - self._last_step)
        job.updated_at = now


def _forget_pruned(session: Session, job_id: str) -> None:
    """Drop rows of local checkpoints the trainer pruned (`keep_last`), so listings and
    `latest` never point at a deleted directory. Remote URIs are left as recorded."""
    rows = session.execute(
        select(Checkpoint.id, Checkpoint.uri).where(Checkpoint.job_id == job_id)
    ).all()
    gone = [row.id for row in rows if "://" not in row.uri and not Path(row.uri).exists()]
    if gone:
        session.execute(delete(Checkpoint).where(Checkpoint.id.in_(gone)))


def find_checkpoint(session: Session, job_id: str, step: int | None) -> tuple[int, str] | None:
    """(step, URI) of a job's checkpoint at `step`, or of its newest when `step` is None."""
    query = select(Checkpoint.step, Checkpoint.uri).where(Checkpoint.job_id == job_id)
    if step is None:
        query = query.order_by(Checkpoint.step.desc()).limit(1)
    else:
        query = query.where(Checkpoint.step == step)
    row = session.execute(query).first()
    return None if row is None else (row.step, row.uri)
