"""The report channel into Postgres: every record once, whichever side crashes when.

No worker process: a `ReportWriter` (what the child runs) writes the file, a
`ReportRelay` (what the supervisor runs) moves it into the real Postgres.
"""

from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from config.worker_settings import WorkerSettings
from store.db import get_engine
from store.leases import claim
from store.models import Checkpoint, EvalResult, Job, JobEvent, Metric, utcnow
from trainer.reporting.callbacks import CheckpointInfo
from trainer.reporting.channel import ReportWriter
from trainer.results import BenchmarkResult, ProblemResult, SampleVerdict
from workers.reconciler import reconcile
from workers.relay import ReportRelay, report_file
from workers.reporting import DbReporter

SETTINGS = WorkerSettings(lease_s=30, lease_renew_s=5, requeue_lost_after_s=60)
RESULT = BenchmarkResult(
    "amc23", 2, {"avg@2": 0.5}, [ProblemResult("p1", 2, 1, [SampleVerdict("7", True)])]
)


def relayed(session: Session, job_id: str) -> tuple[Counter, list[int], list, list]:
    session.expire_all()
    events = session.scalars(select(JobEvent.kind).where(JobEvent.job_id == job_id)).all()
    metrics = session.scalars(select(Metric.step).where(Metric.job_id == job_id)).all()
    checkpoints = session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id)).all()
    evals = session.execute(
        select(EvalResult.benchmark, EvalResult.step).where(EvalResult.job_id == job_id)
    ).all()
    kinds = Counter(k for k in events if k not in ("status", "enqueued"))
    return kinds, sorted(metrics), sorted(checkpoints), sorted(evals)


def test_records_reach_postgres_once_whichever_side_crashes(
    session: Session, redis_url: str, tmp_path: Path
) -> None:
    job = Job(kind="train", spec={}, queue="relay.unserved", enqueued_at=utcnow())
    session.add(job)
    session.commit()
    first = claim(job.id, "w1", 30)
    assert first is not None
    checkpoint_dir = tmp_path / "step-00000002"
    checkpoint_dir.mkdir()
    child = ReportWriter(report_file(tmp_path, first.attempt))
    child.on_event("resumed", "resumed from nothing")
    child.on_train_start(0, 4)
    child.on_step_end(1, {"loss": 1.0})
    child.on_step_end(2, {"loss": float("nan")})
    child.on_eval(2, [RESULT])
    child.on_checkpoint(CheckpointInfo(2, str(checkpoint_dir), "abc", 10, {"a": "b"}))

    relay = ReportRelay(tmp_path, first.attempt, DbReporter(first, SETTINGS))
    assert relay.pump() == 6
    want = Counter({"resumed": 1, "train_started": 1, "eval": 1, "checkpoint": 1})
    assert relayed(session, job.id) == (want, [1, 2], [2], [("amc23", 2)])

    # The supervisor committed, then died before moving its cursor: the replay adds nothing.
    (tmp_path / "reports" / "attempt-0001.cursor").unlink()
    assert relay.pump() == 6
    assert relayed(session, job.id) == (want, [1, 2], [2], [("amc23", 2)])

    # The child wrote two more records, then the supervisor died before relaying them:
    # the next attempt's supervisor relays them before it starts its own child.
    child.on_step_end(3, {"loss": 0.5})
    child.on_event("checkpoint_skipped", "non-finite model; not saved")
    session.execute(
        update(Job).where(Job.id == job.id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    assert reconcile(SETTINGS).requeued == [job.id]
    second = claim(job.id, "w2", 30)
    assert second is not None
    assert ReportRelay(tmp_path, second.attempt, DbReporter(second, SETTINGS)).catch_up() == 2
    want["checkpoint_skipped"] = 1
    assert relayed(session, job.id) == (want, [1, 2, 3], [2], [("amc23", 2)])


def test_a_checkpoint_step_flushes_its_metrics_once(
    session: Session, redis_url: str, tmp_path: Path
) -> None:
    """The step's metrics were flushed at its end (the batch was full): the checkpoint
    that follows writes its row, not the metrics and the job's progress a second time."""
    job = Job(kind="train", spec={}, queue="relay.unserved", enqueued_at=utcnow())
    session.add(job)
    session.commit()
    lease = claim(job.id, "w", 30)
    assert lease is not None
    reporter = DbReporter(lease, SETTINGS.model_copy(update={"metrics_batch": 1}))
    reporter.on_train_start(0, 4)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        reporter.on_step_end(2, {"loss": 1.0})
        reporter.on_checkpoint(CheckpointInfo(2, str(tmp_path), "abc", 10, {}))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    metric_writes = [s for s in statements if s.startswith("INSERT INTO metrics")]
    progress_writes = [s for s in statements if s.startswith("UPDATE jobs")]
    assert (len(metric_writes), len(progress_writes)) == (1, 1), statements
    assert relayed(session, job.id)[1:3] == ([2], [2])
