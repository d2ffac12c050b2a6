"""Preemption: a waiting job that no free slot fits takes a running job's slot when the
claim order (`store.placement`) puts it first.

The reconciler decides each pass (`preempt`). A waiting job that is due and fits no free
slot of a live worker serving its queue looks at the running train jobs on slots that fit
it; it preempts the one the claim order ranks last, provided that with that job back in
the queue the claim order ranks the waiting job first *and* it wins on a hard ground:

- its principal is within its `nominal_gpus` while the running job's borrows,
- or its principal's share (GPU-equivalents held / weight) is lower (`fair_share`),
- or, at equal share, its `priority` is higher (within one principal: always).

Recent usage breaks no preemption by itself: only the claim order's tie-break. Because
the test is the claim order itself, the freed slot claims the waiting job (or one the
claim order puts before it), never the preempted one back. A job already asked to stop
counts as a slot about to be free, so one pass never preempts twice for one job.

Being preempted: `preempt_requested_at` is set and a `preempt_requested` event appended;
the slot sees it where it sees a cancel (`workers.reporting`), the trainer writes a
checkpoint at its next step boundary within the cancel grace, and the attempt ends with
the job back in `queued`, a `preempted` event, and no attempt counted
(`store.attempts.preempted`). Evals (no step boundary) and `resources.preemptible: false`
jobs are never preempted for another job; a drain with `--preempt` hands back all.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, Row, func, or_, select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from store.fleet import (
    REQUESTED_GPU_MEMORY,
    REQUESTED_GPU_TYPE,
    REQUESTED_GPUS,
    REQUESTED_NODES,
)
from store.lifecycle import append_event
from store.models import ACTIVE_STATUSES, Job, JobEvent, JobStatus, Worker, WorkerStatus, utcnow
from store.placement import Candidate, Load, claim_key, fleet_load, serialize_claims

REQUESTED = "preempt_requested"
PREEMPTED = "preempted"
"""Event kinds: a running job was asked to give its slot up; it did and is queued again."""

Ground = Literal["quota", "fair_share", "priority", "drain"]
"""Why a job was asked to give its slot up, as its `preempt_requested` event's `ground`
(a bounded vocabulary, so Prometheus can count by it): another principal's job within its
`nominal_gpus` while this one borrows, a principal below its fair share, a higher
priority, or a drain with `preempt` (a worker's SIGTERM included)."""

WAITING_PER_PASS = 200
"""Waiting jobs one pass considers (by priority, then age): more wait for the next pass."""

PREEMPTIBLE = func.coalesce(Job.spec[("resources", "preemptible")].as_boolean(), True)


@dataclass(frozen=True)
class Decision:
    victim: str
    waiting: str
    ground: Ground
    reason: str


@dataclass
class _Slots:
    """The live workers' slots, as one pass plans them."""

    workers: Sequence[Row]
    free: dict[str, int]

    def fitting(self, job: Row) -> list[str]:
        """Workers serving `job`'s queue whose slots fit it."""
        return [
            w.id
            for w in self.workers
            if job.queue in w.queues
            and w.gpu_count // max(w.slots, 1) >= job.gpus
            and (not w.gpu_memory_mb or job.memory is None or job.memory <= w.gpu_memory_mb)
        ]


def preempt(session: Session) -> list[Decision]:
    """Ask the running jobs that waiting ones should displace to stop (the caller
    commits); what was decided."""
    if not get_settings().preemption.enabled:
        return []
    serialize_claims(session)  # decide from the state the claims see, none in flight
    decisions = plan(session, utcnow())
    for d in decisions:
        request(session, [d.victim], d.ground, d.reason, {"for_job": d.waiting})
    return decisions


def plan(session: Session, now: datetime) -> list[Decision]:
    """Which running job each waiting job (that fits no free slot) should displace."""
    workers = session.execute(
        select(
            Worker.id, Worker.queues, Worker.gpu_count, Worker.slots, Worker.gpu_memory_mb
        ).where(Worker.status == WorkerStatus.ALIVE)
    ).all()
    if not workers:
        return []
    due = or_(Job.not_before.is_(None), Job.not_before <= now)
    waiting = _jobs(session, Job.status == JobStatus.QUEUED, due, limit=WAITING_PER_PASS)
    if not waiting:
        return []
    running = _jobs(session, Job.status.in_(ACTIVE_STATUSES))
    held: dict[str, int] = defaultdict(int)
    for job in running:
        if job.lease_owner and job.preempt_requested_at is None:
            held[job.lease_owner] += 1
    slots = _Slots(workers, {w.id: max(0, w.slots - held[w.id]) for w in workers})
    owners = sorted({j.owner for j in [*waiting, *running]})
    load = fleet_load(session, owners, now)
    victims = [j for j in running if j.status == JobStatus.RUNNING and j.preemptible
               and j.kind == "train" and j.preempt_requested_at is None]  # fmt: skip
    decisions: list[Decision] = []
    for job in waiting:
        if job.nodes > 1:  # a gang needs K slots at once: it waits for them, it preempts none
            continue
        fitting = slots.fitting(job)
        free = next((w for w in fitting if slots.free[w] > 0), None)
        if free is not None:
            slots.free[free] -= 1
            continue
        found = _victim(job, [v for v in victims if v.lease_owner in fitting], load)
        if found is not None:
            victim, ground, reason = found
            victims.remove(victim)
            decisions.append(Decision(victim.id, job.id, ground, reason))
    return decisions


def _victim(job: Row, running: list[Row], load: Load) -> tuple[Row, Ground, str] | None:
    """Of `running`, the one the claim order ranks last that `job` may displace, on
    which ground, and why in words."""
    policy = get_settings().preemption
    ranked = []
    for victim in running:
        after = _without(load, victim)
        mine, theirs = claim_key(_candidate(job), after), claim_key(_candidate(victim), after)
        if mine is None or theirs is None or mine >= theirs:
            continue
        ground: Ground
        if theirs[0] and not mine[0] and policy.fair_share:
            ground, why = "quota", f"principal {victim.owner!r} borrows beyond its nominal_gpus"
        elif mine[1] < theirs[1] and policy.fair_share:
            ground, why = "fair_share", f"principal {job.owner!r} holds less than its fair share"
        elif mine[:2] == theirs[:2] and job.priority > victim.priority:
            ground, why = "priority", f"priority {job.priority} waits, {victim.priority} runs"
        else:
            continue
        ranked.append((theirs, victim, ground, why))
    if not ranked:
        return None
    _, victim, ground, why = max(ranked, key=lambda r: r[0])
    return victim, ground, f"for job {job.id}: {why}"


def _without(load: Load, job: Row) -> Load:
    """`load` as it would be with `job` back in the queue."""
    running, by_type = dict(load.running), dict(load.by_type)
    running[job.owner] = running.get(job.owner, 0) - (job.gpus or 1)
    by_type[(job.owner, job.gpu_type)] = by_type.get((job.owner, job.gpu_type), 0) - job.gpus
    return Load(running, by_type, load.recent)


def _candidate(job: Row) -> Candidate:
    return Candidate(
        job.id, job.owner, job.priority, job.gpus, job.gpu_type, job.queued_at, False, job.nodes
    )


def _jobs(session: Session, *where: ColumnElement[bool], limit: int | None = None) -> Sequence[Row]:
    """Jobs with what the claim order and the fit read, by priority then age."""
    return session.execute(
        select(
            Job.id,
            Job.kind,
            Job.status,
            Job.owner,
            Job.priority,
            Job.queue,
            Job.queued_at,
            Job.lease_owner,
            Job.preempt_requested_at,
            func.coalesce(REQUESTED_GPUS, 0).label("gpus"),
            func.coalesce(REQUESTED_GPU_TYPE, "any").label("gpu_type"),
            REQUESTED_GPU_MEMORY.label("memory"),
            func.coalesce(REQUESTED_NODES, 1).label("nodes"),
            PREEMPTIBLE.label("preemptible"),
        )
        .where(*where)
        .order_by(Job.priority.desc(), Job.queued_at, Job.id)
        .limit(limit)
    ).all()


def request(
    session: Session,
    job_ids: Sequence[str],
    ground: Ground,
    reason: str,
    data: dict[str, str] | None = None,
) -> list[str]:
    """Ask those of `job_ids` still running (and not yet asked) to give their slot up on
    `ground` (`reason` says it in words): each stops at its next step boundary and is
    queued again; the ids asked."""
    now = utcnow()
    asked = session.scalars(
        update(Job)
        .where(
            Job.id.in_(job_ids),
            Job.status == JobStatus.RUNNING,
            Job.preempt_requested_at.is_(None),
        )
        .values(preempt_requested_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).all()
    for job in session.scalars(select(Job).where(Job.id.in_(asked))):
        message = f"asked to stop at its next step boundary and give its slot up ({reason})"
        payload = {"ground": ground, "reason": reason, **(data or {})}
        append_event(session, job, REQUESTED, message, payload)
    return list(asked)


@dataclass(frozen=True)
class Asked:
    """Preemption requests so far for one (queue, GPU type, ground)."""

    queue: str
    gpu_type: str
    ground: str
    """A `Ground`, or `unrecorded` for requests made before grounds were recorded."""
    count: int


@dataclass(frozen=True)
class Ended:
    """Preemptions that ended (the job back in the queue) for one (queue, GPU type)."""

    queue: str
    gpu_type: str
    count: int
    latency_seconds: float
    """Summed over them: from the request to the slot being free."""


def asked_totals(session: Session) -> list[Asked]:
    """Every `preempt_requested` event, counted per (queue, GPU type, ground)."""
    ground = func.coalesce(JobEvent.data["ground"].as_string(), "unrecorded")
    rows = session.execute(
        select(Job.queue, REQUESTED_GPU_TYPE, ground, func.count())
        .join(Job, Job.id == JobEvent.job_id)
        .where(JobEvent.kind == REQUESTED)
        .group_by(Job.queue, REQUESTED_GPU_TYPE, ground)
    ).all()
    return [Asked(*row) for row in rows]


def ended_totals(session: Session) -> list[Ended]:
    """Every `preempted` event, counted and its latency summed per (queue, GPU type)."""
    latency = func.coalesce(func.sum(JobEvent.data["latency_s"].as_float()), 0.0)
    rows = session.execute(
        select(Job.queue, REQUESTED_GPU_TYPE, func.count(), latency)
        .join(Job, Job.id == JobEvent.job_id)
        .where(JobEvent.kind == PREEMPTED)
        .group_by(Job.queue, REQUESTED_GPU_TYPE)
    ).all()
    return [Ended(queue, gpu_type, count, float(total)) for queue, gpu_type, count, total in rows]
