"""Gangs: a multi-node job's attempt holds K slots on K distinct workers, or none.

A job with `resources.nodes = K > 1` is claimed by a slot like any other
(`store.placement`), but in the same transaction, under the same claim lock, K-1 other
live workers of its queue with a free slot that fits `gpus / nodes` are reserved: one
`gang_members` row each (`pending`), plus the claiming slot's own row (member 0, the
rendezvous host, `running`). If fewer than K-1 are free, nothing is written, so two
half-placed gangs can never hold slots waiting for each other.

A worker's slot is free when the jobs leased to it (`jobs.lease_owner`) plus the gang
members it holds beyond member 0 of those jobs number fewer than its slots. A pending
member is started by the first slot of its worker that asks for work
(`take_pending`, the first thing `store.placement.place` does under the claim lock), so a
reserved slot is never given to another job; the claimer sends that worker a wake-up
message (`workers.gang`). Each member renews its own lease (`renew`) and the job's; a
member whose lease lapsed (its worker died, or never started it) fails the attempt for the
whole gang (`fail_for_lapsed`), as does any member's failure (`store.attempts.fail`),
since every member's fenced writes and renewals stop once the job left the attempt.
The attempt ends when every member is done (`finish_member`): the job's reports come
from whichever member hosts global rank 0, and the last one to finish has relayed them.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from config.worker_settings import get_worker_settings
from store import lifecycle
from store.db import get_sessionmaker
from store.fleet import REQUESTED_GPU_MEMORY
from store.lifecycle import Claimed, JobError
from store.models import (
    ACTIVE_STATUSES,
    GangMember,
    Job,
    MemberState,
    Worker,
    WorkerStatus,
    utcnow,
)

RENDEZVOUS_HOST = 0
"""The member whose worker claimed the job: it hosts the c10d store and publishes where."""


@dataclass(frozen=True)
class Pending:
    """A gang member a slot took up: the attempt it joins and its place in the gang."""

    job_id: str
    member: int
    claimed: Claimed


class AttemptRef(Protocol):
    """A member's lease (`store.leases.Lease`): its job, fencing token, attempt, member."""

    job_id: str
    token: int
    attempt: int
    member: int | None


def _current() -> Any:
    """Member rows of their job's current attempt while it is active."""
    return (
        select(Job.id)
        .where(
            Job.id == GangMember.job_id,
            Job.attempt == GangMember.attempt,
            Job.status.in_(ACTIVE_STATUSES),
        )
        .exists()
    )


def busy_slots(session: Session) -> dict[str, int]:
    """Per worker, the slots its jobs and gang members hold now."""
    held: dict[str, int] = {}
    leased = session.execute(
        select(Job.lease_owner, func.count())
        .where(Job.status.in_(ACTIVE_STATUSES), Job.lease_owner.is_not(None))
        .group_by(Job.lease_owner)
    ).all()
    members = session.execute(
        select(GangMember.worker, func.count())
        .where(
            GangMember.member != RENDEZVOUS_HOST,
            GangMember.state != MemberState.DONE,
            _current(),
        )
        .group_by(GangMember.worker)
    ).all()
    for worker, count in [*leased, *members]:
        held[worker] = held.get(worker, 0) + count
    return held


def free_workers(
    session: Session, queue: str, gpus_per_node: int, memory_mb: int | None
) -> list[str]:
    """Live workers serving `queue` with a free slot of at least `gpus_per_node` GPUs (of at
    least `memory_mb` each where they report it), the least busy first. Live: heartbeat
    within three periods, so a worker that just died is not picked (most of the time: one
    that is, never starts its member, which fails the attempt after `gang_start_s`)."""
    fresh_since = utcnow() - timedelta(seconds=3 * get_worker_settings().worker_heartbeat_s)
    busy = busy_slots(session)
    rows = session.execute(
        select(Worker.id, Worker.queues, Worker.slots, Worker.gpu_count, Worker.gpu_memory_mb)
        .where(Worker.status == WorkerStatus.ALIVE, Worker.heartbeat_at >= fresh_since)
        .order_by(Worker.id)
    ).all()
    free = []
    for worker, queues, slots, gpu_count, gpu_memory in rows:
        per_slot = gpu_count // max(slots, 1)
        if queue not in queues or per_slot < gpus_per_node or busy.get(worker, 0) >= slots:
            continue
        if memory_mb is not None and gpu_memory and gpu_memory < memory_mb:
            continue
        free.append((busy.get(worker, 0) / slots, worker))
    return [worker for _, worker in sorted(free)]


def claim(session: Session, job_id: str, host: str, lease_s: float) -> Claimed | None:
    """Claim gang job `job_id` with `host` (the claiming slot's worker) as member 0 and
    K-1 other free workers as pending members, or claim nothing (None)."""
    job = session.execute(
        select(Job.queue, Job.spec, REQUESTED_GPU_MEMORY).where(Job.id == job_id)
    ).one_or_none()
    if job is None:
        return None
    resources = job.spec["resources"]
    nodes, gpus = int(resources["nodes"]), int(resources["gpus"])
    others = [w for w in free_workers(session, job.queue, gpus // nodes, job[2]) if w != host]
    if len(others) < nodes - 1:
        return None
    claimed = lifecycle.claim(session, job_id, host, lease_s)
    if claimed is None:
        return None
    session.execute(delete(GangMember).where(GangMember.job_id == job_id))
    now, start_s = utcnow(), get_worker_settings().gang_start_s
    workers = [host, *others[: nodes - 1]]
    session.add_all(
        GangMember(
            job_id=job_id,
            member=i,
            attempt=claimed.attempt,
            worker=worker,
            state=MemberState.RUNNING if i == RENDEZVOUS_HOST else MemberState.PENDING,
            lease_expires_at=now + timedelta(seconds=lease_s if i == RENDEZVOUS_HOST else start_s),
        )
        for i, worker in enumerate(workers)
    )
    session.flush()
    lifecycle.append_event(
        session,
        _Ref(job_id, claimed.attempt),
        "gang_placed",
        f"attempt {claimed.attempt} placed on {nodes} workers: " + ", ".join(workers),
        {"workers": workers},
    )
    return claimed


@dataclass(frozen=True)
class _Ref:
    id: str
    attempt: int


def shortfall(session: Session, job_id: str, host: str) -> str:
    """Why gang job `job_id` could not be placed from `host` (for the hand-back log)."""
    job = session.execute(
        select(Job.queue, Job.spec, REQUESTED_GPU_MEMORY).where(Job.id == job_id)
    ).one()
    resources = job.spec["resources"]
    nodes, per_node = int(resources["nodes"]), int(resources["gpus"]) // int(resources["nodes"])
    others = [w for w in free_workers(session, job.queue, per_node, job[2]) if w != host]
    return (
        f"needs {nodes} workers of queue {job.queue} with a free slot of {per_node} GPUs; "
        f"{len(others)} besides this one"
    )


def take_pending(session: Session, worker: str, lease_s: float) -> Pending | None:
    """Start a gang member reserved on `worker`, if one waits: it runs before any other
    job this slot could claim, since its gang's other members wait for it."""
    row = session.execute(
        select(GangMember.job_id, GangMember.member)
        .where(GangMember.worker == worker, GangMember.state == MemberState.PENDING, _current())
        .order_by(GangMember.job_id, GangMember.member)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).one_or_none()
    if row is None:
        return None
    session.execute(
        update(GangMember)
        .where(GangMember.job_id == row.job_id, GangMember.member == row.member)
        .values(state=MemberState.RUNNING, lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    )
    job = session.execute(
        select(Job.fencing_token, Job.attempt, Job.kind, Job.spec).where(Job.id == row.job_id)
    ).one()
    claimed = Claimed(job.fencing_token, job.attempt, job.kind, dict(job.spec))
    return Pending(row.job_id, row.member, claimed)


def _this_attempt(job_id: str, attempt: int, member: int | None = None) -> Any:
    where = [GangMember.job_id == job_id, GangMember.attempt == attempt]
    if member is not None:
        where.append(GangMember.member == member)
    return and_(*where)


def members(ref: AttemptRef) -> list[GangMember]:
    """The attempt's members, member 0 (and its endpoint, once published) first."""
    with get_sessionmaker()() as session:
        return list(
            session.scalars(
                select(GangMember)
                .where(_this_attempt(ref.job_id, ref.attempt))
                .order_by(GangMember.member)
            )
        )


def publish_endpoint(ref: AttemptRef, endpoint: str) -> None:
    """Member 0 tells the others where its c10d store listens."""
    with get_sessionmaker()() as session, session.begin():
        session.execute(
            update(GangMember)
            .where(_this_attempt(ref.job_id, ref.attempt, RENDEZVOUS_HOST))
            .values(endpoint=endpoint)
        )


@dataclass(frozen=True)
class Lapsed:
    member: int
    worker: str
    state: str


def renew(ref: AttemptRef, lease_s: float) -> list[Lapsed] | None:
    """Extend this member's lease and the job's (any live member keeps the job's lease);
    the members whose lease lapsed. None when the attempt is over (the job moved on: this
    member must stop)."""
    now = utcnow()
    until = now + timedelta(seconds=lease_s)
    with get_sessionmaker()() as session, session.begin():
        return _renew(session, ref, now, until)


def _renew(
    session: Session, ref: AttemptRef, now: datetime, until: datetime
) -> list[Lapsed] | None:
    job_id, attempt = ref.job_id, ref.attempt
    job = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.fencing_token == ref.token, Job.status.in_(ACTIVE_STATUSES))
        .values(lease_expires_at=until)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if job is None:
        return None
    session.execute(
        update(GangMember)
        .where(_this_attempt(job_id, attempt, ref.member), GangMember.state != MemberState.DONE)
        .values(lease_expires_at=until)
    )
    lapsed = session.execute(
        select(GangMember.member, GangMember.worker, GangMember.state).where(
            _this_attempt(job_id, attempt),
            GangMember.state != MemberState.DONE,
            GangMember.lease_expires_at < now,
        )
    ).all()
    return [Lapsed(*row) for row in lapsed]


def lapsed_error(lapsed: list[Lapsed], attempt: int) -> JobError:
    first = lapsed[0]
    how = "never started it" if first.state == MemberState.PENDING else "stopped heartbeating"
    return JobError(
        "node_lost",
        f"gang member {first.member} on worker {first.worker} lost its lease ({how})",
        attempt,
    )


def finish_member(session: Session, job: Job, member: int) -> bool:
    """Mark `member` of the locked `job`'s attempt done; True when it was the last one
    running, so the caller ends the attempt."""
    session.execute(
        update(GangMember)
        .where(_this_attempt(job.id, job.attempt, member))
        .values(state=MemberState.DONE)
    )
    left = session.scalar(
        select(func.count()).where(
            _this_attempt(job.id, job.attempt), GangMember.state != MemberState.DONE
        )
    )
    return not left
