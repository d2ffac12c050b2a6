"""Which queued job a free slot runs: one that fits it, in fair-share order.

A run message names a job, but the slot that receives it claims the job that should run
next on *this* slot (`place`): among the queued jobs of the queues its worker serves,
those that fit (the slot holds at least the job's GPUs, each with at least its
`gpu_memory_mb` where the worker reports its GPUs' memory) and are due (`not_before`
passed), the principal with the lowest weighted share first, then the job's priority.
When the claimed job is another than the message's, the message's job is still queued
and its message is spent, so the caller hands that message back to the broker; the
claimed job's own message stays in the broker and is a no-op (or serves the next job)
when it arrives. Messages per queue thus never fall below the jobs that wait in it.

The order (documented in docs/operations.md), smallest first, per principal p:

1. `over_nominal`: starting the job would take p, or p's group (`DGPO_GROUPS`), past its
   `nominal_gpus` for the job's GPU type. Such a job runs only while no job within its
   quotas fits the slot (borrowing idle capacity, as a Kueue cohort does); with
   `can_borrow: false` (of p or its group) it does not run at all.
2. `share = running(p) / weight(p)`: GPU-equivalents p's running jobs hold now (a CPU
   job counts as one), divided by p's fair-share weight.
3. `recent = used(p, window) / weight(p)`: GPU-equivalent seconds of p's attempts that
   ended within `fair_share_window_s` (Slurm's fair-share over recent usage, without
   decay), breaking ties between principals with equal current share.
4. within p: higher `priority` first, a job that last failed on this worker after the
   others (a retry prefers another worker), then the oldest.

A job on K > 1 nodes is claimed with K-1 other workers' slots or not at all
(`store.gangs`), and a slot whose worker holds a reserved gang member starts that member
before anything else.

Claims are serialised by a transaction-scoped advisory lock on Postgres, so two slots
never decide from the same snapshot of usage; a claim is one short transaction per
attempt, so the lock costs nothing measurable. A slot of a draining worker claims
nothing and hands its message back (`store.workers.drain` takes the same lock, so a
drain never misses a claim in flight).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, text, true
from sqlalchemy.orm import Session

from config.settings import get_settings
from store import gangs, lifecycle, usage
from store.fleet import REQUESTED_GPU_MEMORY, REQUESTED_GPU_TYPE, REQUESTED_GPUS, REQUESTED_NODES
from store.lifecycle import Claimed
from store.models import ACTIVE_STATUSES, Job, JobStatus, Worker, WorkerStatus, utcnow

CLAIM_LOCK = 0x64677030  # "dgp0": any constant shared by every claimer
_GPUS = func.coalesce(REQUESTED_GPUS, 0)
_NODES = func.coalesce(REQUESTED_NODES, 1)


@dataclass(frozen=True)
class Slot:
    """A free slot asking for work: its worker (the lease owner) and the GPUs it holds."""

    worker: str
    gpus: int


@dataclass(frozen=True)
class Placed:
    """What a run message led to."""

    claimed: Claimed | None
    job_id: str | None
    """The job claimed (None: nothing)."""
    hand_back: bool
    """The message's job is still queued and due but this claim did not take it: send its
    message again (after a pause when nothing was claimed, so it can reach another slot)."""
    reason: str
    member: int | None = None
    """The claimed job's gang member this slot runs (`store.gangs`); None: not a gang."""


@dataclass(frozen=True)
class Candidate:
    """A job competing for a slot, as the claim order sees it."""

    id: str
    owner: str
    priority: int
    gpus: int
    gpu_type: str
    queued_at: datetime
    failed_here: bool
    nodes: int


def place(session: Session, job_id: str, slot: Slot, lease_s: float) -> Placed:
    """Claim the job `slot` should run next, prompted by `job_id`'s message (the caller
    commits)."""
    serialize_claims(session)
    if (pending := gangs.take_pending(session, slot.worker, lease_s)) is not None:
        why = f"member {pending.member} of gang job {pending.job_id} waits for this worker"
        hand_back = pending.job_id != job_id
        return Placed(pending.claimed, pending.job_id, hand_back, why, pending.member)
    now = utcnow()
    message_job = session.execute(
        select(Job.queue, Job.status, Job.not_before, _GPUS, REQUESTED_GPU_MEMORY, _NODES).where(
            Job.id == job_id
        )
    ).one_or_none()
    if message_job is None or message_job.status != JobStatus.QUEUED:
        return Placed(None, None, False, "not queued (already claimed, finished or cancelled)")
    worker = session.execute(
        select(Worker.queues, Worker.status, Worker.gpu_memory_mb).where(Worker.id == slot.worker)
    ).one_or_none()
    if worker is not None and worker.status in (WorkerStatus.DRAINING, WorkerStatus.DRAINED):
        return Placed(None, None, True, f"worker {slot.worker} is draining")
    queues = list(worker.queues) if worker is not None else [message_job.queue]
    if message_job.queue not in queues:
        queues.append(message_job.queue)
    memory = worker.gpu_memory_mb if worker is not None and worker.gpu_memory_mb else None
    fitting = _candidates(session, queues, slot, memory, now)
    for candidate in _ranked(session, fitting, slot, now):
        gang = candidate.nodes > 1
        claim = gangs.claim if gang else lifecycle.claim
        claimed = claim(session, candidate.id, slot.worker, lease_s)
        if claimed is not None:
            why = "claimed" if candidate.id == job_id else f"job {candidate.id} goes first"
            member = gangs.RENDEZVOUS_HOST if gang else None
            return Placed(claimed, candidate.id, candidate.id != job_id, why, member)
    due = message_job.not_before is None or message_job.not_before <= now
    if not due:
        return Placed(None, None, False, f"not due before {message_job.not_before.isoformat()}")
    nodes, needs_memory = message_job[5], message_job[4]
    needs = message_job[3] // nodes
    if needs > slot.gpus:
        why = f"needs {needs} GPUs; this slot holds {slot.gpus}"
    elif memory is not None and needs_memory is not None and needs_memory > memory:
        why = f"needs {needs_memory} MiB per GPU; this worker's have {memory}"
    elif nodes > 1:
        why = gangs.shortfall(session, job_id, slot.worker)
    else:
        why = "its principal is at its quota and may not borrow"
    return Placed(None, None, True, why)


def serialize_claims(session: Session) -> None:
    """Hold the claim lock until the transaction ends: no claim decides meanwhile."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK})


def _candidates(
    session: Session, queues: list[str], slot: Slot, memory_mb: int | None, now: datetime
) -> list[Candidate]:
    """Per principal, its best job for this slot (priority, not failed here, oldest): of
    those it fits (GPUs, and memory per GPU where the worker reports it) that are due."""
    fits_memory = (
        or_(REQUESTED_GPU_MEMORY.is_(None), memory_mb >= REQUESTED_GPU_MEMORY)
        if memory_mb is not None
        else true()
    )
    failed_here = func.coalesce(Job.last_failed_on == slot.worker, literal(False))
    order = (Job.priority.desc(), failed_here, Job.queued_at, Job.id)
    rank = func.row_number().over(partition_by=Job.owner, order_by=order).label("rank")
    fitting = (
        select(
            Job.id,
            Job.owner,
            Job.priority,
            _GPUS.label("gpus"),
            func.coalesce(REQUESTED_GPU_TYPE, "any").label("gpu_type"),
            Job.queued_at,
            failed_here.label("failed_here"),
            _NODES.label("nodes"),
            rank,
        )
        .where(
            Job.status == JobStatus.QUEUED,
            Job.queue.in_(queues),
            or_(Job.not_before.is_(None), Job.not_before <= now),
            slot.gpus * _NODES >= _GPUS,
            fits_memory,
        )
        .subquery()
    )
    rows = session.execute(select(fitting).where(fitting.c.rank <= _PER_PRINCIPAL)).all()
    return [
        Candidate(
            r.id, r.owner, r.priority, r.gpus, r.gpu_type, r.queued_at, bool(r.failed_here), r.nodes
        )
        for r in rows
    ]


_PER_PRINCIPAL = 3
"""Candidates read per principal: the best, and spares should a cancel take it first."""


def _ranked(
    session: Session, candidates: list[Candidate], slot: Slot, now: datetime
) -> list[Candidate]:
    """`candidates` in claim order (the module docstring's formula); ineligible ones out."""
    if not candidates:
        return []
    load = fleet_load(session, sorted({c.owner for c in candidates}), now)
    keyed = [(key, c) for c in candidates if (key := claim_key(c, load)) is not None]
    return [c for _, c in sorted(keyed, key=lambda kc: kc[0])]


@dataclass
class Load:
    """What the claim order reads of the principals' usage (the module docstring)."""

    running: dict[str, int]
    """GPU-equivalents each owner's active jobs hold."""
    by_type: dict[tuple[str, str], int]
    """GPUs each (owner, GPU type) holds."""
    recent: dict[str, float]
    """GPU-equivalent seconds of each owner's attempts ended within the window."""


def fleet_load(session: Session, owners: list[str], now: datetime) -> Load:
    """The usage of `owners` (and of their groups' other members) the claim order
    compares, now."""
    settings = get_settings()
    since = now - timedelta(seconds=settings.fair_share_window_s)
    grouped = {m for o in owners if (g := settings.group_of(o)) for m in g[1].members}
    running, by_type = _running_usage(session, sorted(grouped | set(owners)))
    return Load(running, by_type, usage.recent_gpu_seconds(session, owners, since))


def claim_key(c: Candidate, load: Load) -> tuple[Any, ...] | None:
    """Where `c` stands in the claim order (smaller first) given `load`; None when its
    principal or its group is at a hard quota."""
    settings = get_settings()
    policy = settings.policy(c.owner)
    nominal = policy.nominal_gpus.get(c.gpu_type) if c.gpus else None
    over = nominal is not None and load.by_type.get((c.owner, c.gpu_type), 0) + c.gpus > nominal
    if over and not policy.can_borrow:
        return None
    if (found := settings.group_of(c.owner)) is not None:
        group = found[1]
        shared = group.nominal_gpus.get(c.gpu_type) if c.gpus else None
        held = sum(load.by_type.get((m, c.gpu_type), 0) for m in group.members)
        group_over = shared is not None and held + c.gpus > shared
        if group_over and not group.can_borrow:
            return None
        over = over or group_over
    share = load.running.get(c.owner, 0) / policy.weight
    used = load.recent.get(c.owner, 0.0) / policy.weight
    return (over, share, used, -c.priority, c.failed_here, c.queued_at, c.id)


def _running_usage(
    session: Session, owners: list[str]
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Per owner, GPU-equivalents its active jobs hold (a CPU job holds a slot and no GPU:
    it counts as one); per (owner, GPU type), GPUs."""
    gpu_type = func.coalesce(REQUESTED_GPU_TYPE, "any")
    units = case((_GPUS > 0, _GPUS), else_=1)
    rows = session.execute(
        select(Job.owner, gpu_type, func.sum(_GPUS), func.sum(units))
        .where(Job.status.in_(ACTIVE_STATUSES), Job.owner.in_(owners))
        .group_by(Job.owner, gpu_type)
    ).all()
    running: dict[str, int] = {}
    by_type: dict[tuple[str, str], int] = {}
    for owner, kind, gpus, held in rows:
        running[owner] = running.get(owner, 0) + int(held or 0)
        by_type[(owner, kind)] = int(gpus or 0)
    return running, by_type
