"""What the GPU-fleet scheduler reads: demand per queue and GPU type, and the workers."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from store.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    Worker,
    WorkerStatus,
    utcnow,
)

REQUESTED_GPUS = Job.spec[("resources", "gpus")].as_integer()
REQUESTED_GPU_TYPE = Job.spec[("resources", "gpu_type")].as_string()
REQUESTED_GPU_MEMORY = Job.spec[("resources", "gpu_memory_mb")].as_integer()
REQUESTED_NODES = Job.spec[("resources", "nodes")].as_integer()
"""What a job asked for, read from its spec (the row keeps no copy of its resources)."""


@dataclass
class QueueLoad:
    """Demand and load of one (queue, GPU type)."""

    queue: str
    gpu_type: str
    queued: int = 0
    queued_gpus: int = 0
    oldest_wait_seconds: float | None = None
    running: int = 0
    running_gpus: int = 0


@dataclass
class ShapeLoad:
    """Demand and load of one job shape: a (queue, GPU type, GPUs per job, nodes). An
    autoscaler reads it to tell one 8-GPU job from eight 1-GPU jobs, and a 16-GPU job on
    two 8-GPU workers from one that needs a 16-GPU slot."""

    queue: str
    gpu_type: str
    gpus: int
    nodes: int = 1
    queued: int = 0
    oldest_wait_seconds: float | None = None
    running: int = 0
    fits_live_slot: bool = True
    """`nodes` live workers serving the queue have a slot with at least `gpus / nodes`
    GPUs each."""


@dataclass
class FleetLoad:
    queues: list[QueueLoad]
    shapes: list[ShapeLoad]
    largest_queued_gpus: int
    """The most GPUs one queued job asks for (0: none queued, or only CPU jobs)."""
    workers_alive: int
    slots_alive: int
    warnings: list[str] = field(default_factory=list)
    """Queued jobs that no live worker serves, or that no live slot is large enough for."""


def queue_summary(session: Session) -> FleetLoad:
    """Per (queue, GPU type) and per job shape: queued jobs, requested GPUs, oldest wait,
    running load; the largest queued request; warnings for jobs nothing can run."""
    active = [JobStatus.QUEUED, *ACTIVE_STATUSES]
    gpus_column = func.coalesce(REQUESTED_GPUS, 0)
    nodes_column = func.coalesce(REQUESTED_NODES, 1)
    rows = session.execute(
        select(
            Job.queue,
            REQUESTED_GPU_TYPE,
            gpus_column,
            nodes_column,
            Job.status,
            func.count(),
            func.min(Job.queued_at),
        )
        .where(Job.status.in_(active))
        .group_by(Job.queue, REQUESTED_GPU_TYPE, gpus_column, nodes_column, Job.status)
    ).all()
    now = utcnow()
    served = served_slots(session)
    table: dict[tuple[str, str], QueueLoad] = {}
    shapes: dict[tuple[str, str, int, int], ShapeLoad] = {}
    for queue, gpu_type, gpus, nodes, status, count, oldest in rows:
        gpus, nodes = int(gpus), int(nodes)
        row = table.setdefault((queue, gpu_type), QueueLoad(queue, gpu_type))
        fits = _fits(served.get(queue), gpus, nodes)
        shape = shapes.setdefault(
            (queue, gpu_type, gpus, nodes),
            ShapeLoad(queue, gpu_type, gpus, nodes, fits_live_slot=fits),
        )
        if status == JobStatus.QUEUED:
            row.queued += count
            row.queued_gpus += count * gpus
            row.oldest_wait_seconds = _oldest(row.oldest_wait_seconds, _age(now, oldest))
            shape.queued += count
            shape.oldest_wait_seconds = _oldest(shape.oldest_wait_seconds, _age(now, oldest))
        else:
            row.running += count
            row.running_gpus += count * gpus
            shape.running += count
    alive = session.execute(
        select(func.count(), func.coalesce(func.sum(Worker.slots), 0)).where(
            Worker.status == WorkerStatus.ALIVE
        )
    ).one()
    waiting = [(s.queue, s.gpus, s.nodes) for s in shapes.values() if s.queued]
    return FleetLoad(
        queues=sorted(table.values(), key=lambda r: (r.queue, r.gpu_type)),
        shapes=sorted(shapes.values(), key=lambda s: (s.queue, s.gpu_type, s.gpus, s.nodes)),
        largest_queued_gpus=max((gpus for _, gpus, _ in waiting), default=0),
        workers_alive=alive[0],
        slots_alive=int(alive[1]),
        warnings=queue_warnings(waiting, served),
    )


def _oldest(a: float | None, b: float | None) -> float | None:
    return max((x for x in (a, b) if x is not None), default=None)


def _age(now: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    if then.tzinfo is None:  # aggregate results bypass the column type on SQLite
        then = datetime.fromisoformat(str(then)).replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


def list_workers(session: Session, status: str | None) -> Sequence[Worker]:
    stmt = select(Worker).order_by(Worker.id)
    if status is not None:
        stmt = stmt.where(Worker.status == status)
    return session.scalars(stmt).all()


def recent_workers(session: Session, dead_since: datetime) -> tuple[Sequence[Worker], int]:
    """The live workers and those dead (last heartbeat) since `dead_since`, and how many
    older dead ones were left out: workers of stopped stacks leave their rows behind."""
    recent = (Worker.status == WorkerStatus.ALIVE) | (Worker.heartbeat_at >= dead_since)
    shown = session.scalars(select(Worker).where(recent).order_by(Worker.id)).all()
    hidden = session.scalar(select(func.count()).select_from(Worker).where(~recent)) or 0
    return shown, hidden


def served_queues(session: Session) -> set[str]:
    """Every queue some live worker consumes."""
    return set(served_slots(session))


def served_slots(session: Session) -> dict[str, list[int]]:
    """Every queue some live worker consumes, with the GPUs one slot of each such worker
    holds (a worker's GPUs split equally among its slots), largest first."""
    workers = Worker.__table__  # Core, not ORM: it runs once per group commit of POST /jobs
    rows = session.execute(
        select(workers.c.queues, workers.c.gpu_count, workers.c.slots).where(
            workers.c.status == WorkerStatus.ALIVE
        )
    )
    slot_sizes: dict[str, list[int]] = {}
    for queues, gpu_count, slots in rows:
        per_slot = gpu_count // max(slots, 1)
        for queue in queues:
            slot_sizes.setdefault(queue, []).append(per_slot)
    return {queue: sorted(sizes, reverse=True) for queue, sizes in slot_sizes.items()}


def _fits(sizes: list[int] | None, gpus: int, nodes: int) -> bool:
    """`nodes` of the workers with slots `sizes` each hold a slot of `gpus / nodes` GPUs."""
    return sizes is not None and len(sizes) >= nodes and sizes[nodes - 1] >= gpus // nodes


def queue_warnings(
    waiting: Iterable[tuple[str, int, int]], served: dict[str, list[int]]
) -> list[str]:
    """One line per queue no live worker serves, and per job shape (queue, GPUs, nodes) no
    live slot of its queue, or too few live workers, can hold: such jobs wait until
    workers that can run them start."""
    warnings = []
    for queue, gpus, nodes in sorted(set(waiting)):
        sizes = served.get(queue)
        if sizes is None:
            warnings.append(
                f"no live worker serves queue {queue}; the job waits until one does "
                f"(start one with `dgpo worker --queues {queue}`)"
            )
        elif nodes == 1 and gpus > sizes[0]:
            warnings.append(
                f"no live worker on queue {queue} has a slot with {gpus} GPUs (the largest "
                f"has {sizes[0]}); the job waits until one does (start a worker with "
                f"at least {gpus} GPUs per slot: `dgpo worker --slots` = its GPUs / {gpus})"
            )
        elif not _fits(sizes, gpus, nodes):
            per_node = gpus // nodes
            enough = sum(size >= per_node for size in sizes)
            warnings.append(
                f"the job runs on {nodes} workers of queue {queue} with a slot of "
                f"{per_node} GPUs each, and {enough} live worker(s) have one; it waits "
                f"until {nodes} do (start more with `dgpo worker --queues {queue}`)"
            )
    return list(dict.fromkeys(warnings))


def jobs_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each status (statuses with none are absent)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).tuples()
    return dict(rows.all())


def queued_per_queue(session: Session) -> dict[str, int]:
    """Queued jobs per queue (queues with none are absent)."""
    rows = session.execute(
        select(Job.queue, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.queue)
    ).tuples()
    return dict(rows.all())


@dataclass(frozen=True)
class Durations:
    """Run times of the terminal jobs of one (kind, status), as a cumulative histogram."""

    kind: str
    status: str
    count: int
    total_seconds: float
    at_most: list[tuple[float, int]]
    """(bucket bound, jobs that took at most that long), in `buckets` order."""


def job_durations(session: Session, buckets: Sequence[float]) -> list[Durations]:
    """Wall time from first start to finish of terminal jobs, bucketed in the database."""
    seconds = _duration_seconds(session)
    columns = [func.count(), func.coalesce(func.sum(seconds), 0.0)]
    columns += [func.sum(case((seconds <= b, 1), else_=0)) for b in buckets]
    rows = session.execute(
        select(Job.kind, Job.status, *columns)
        .where(Job.status.in_(TERMINAL_STATUSES), Job.started_at.is_not(None))
        .group_by(Job.kind, Job.status)
    ).all()
    return [
        Durations(
            kind,
            status,
            count,
            float(total),
            [(b, int(n or 0)) for b, n in zip(buckets, cumulative, strict=True)],
        )
        for kind, status, count, total, *cumulative in rows
    ]


def _duration_seconds(session: Session) -> ColumnElement[float]:
    """finished_at - started_at in seconds, in the database's own date arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    return func.extract("epoch", Job.finished_at - Job.started_at)
