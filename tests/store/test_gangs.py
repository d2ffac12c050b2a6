"""Gang placement in Postgres (`store.gangs` through `store.placement`): a multi-node job
takes K slots on K distinct workers in one transaction or none, a reserved member is the
first thing its worker's next slot runs, leases are per member, and the attempt ends with
its last member. The slots are `place` calls; tests/workers/test_gang_e2e.py runs the same
with real workers."""

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store import attempts, gangs
from store.leases import Lease, place
from store.models import GangMember, Job, JobEvent, Worker, utcnow
from store.placement import Slot

QUEUE = "gpu.any"


def add_workers(session: Session, *names: str) -> None:
    """Live one-slot workers with one GPU each, serving `gpu.any`."""
    session.add_all(
        Worker(id=name, host="h", queues=[QUEUE], gpu_count=1, slots=1) for name in names
    )
    session.commit()


def add_job(session: Session, gpus: int = 2, nodes: int = 2, priority: int = 0) -> str:
    job = Job(
        kind="train",
        spec={"resources": {"gpus": gpus, "nodes": nodes, "gpu_type": "any"}},
        queue=QUEUE,
        priority=priority,
    )
    session.add(job)
    session.commit()
    return job.id


def member_rows(session: Session, job_id: str) -> list[tuple[int, str, str]]:
    session.expire_all()
    rows = session.scalars(
        select(GangMember).where(GangMember.job_id == job_id).order_by(GangMember.member)
    )
    return [(m.member, m.worker, m.state) for m in rows]


def job_row(session: Session, job_id: str) -> Job:
    session.expire_all()
    return session.get_one(Job, job_id)


def test_a_gang_that_cannot_be_fully_placed_claims_nothing(session: Session) -> None:
    add_workers(session, "a", "b", "c")
    busy = add_job(session, gpus=1, nodes=1)
    assert place(busy, Slot("b", 1), 30)[0] is not None  # b's only slot is taken
    gang = add_job(session, gpus=3, nodes=3)

    lease, placed = place(gang, Slot("a", 1), 30)

    assert lease is None and placed.hand_back, placed
    assert (
        placed.reason
        == "needs 3 workers of queue gpu.any with a free slot of 1 GPUs; 1 besides this one"
    )
    job = job_row(session, gang)
    assert (job.status, job.attempt, job.lease_owner) == ("queued", 0, None)
    assert member_rows(session, gang) == []
    kinds = session.scalars(select(JobEvent.kind).where(JobEvent.job_id == gang)).all()
    assert kinds == []


def test_two_gangs_short_of_workers_never_hold_half_each(session: Session) -> None:
    """Three free workers, two 2-node gangs: the first takes two, the second none."""
    add_workers(session, "a", "b", "c")
    first, second = add_job(session, priority=5), add_job(session)
    got_first = place(first, Slot("a", 1), 30)[0]
    assert got_first is not None and got_first.member == 0
    assert member_rows(session, first) == [(0, "a", "running"), (1, "b", "pending")]

    lease, placed = place(second, Slot("c", 1), 30)

    assert lease is None and "0 besides this one" in placed.reason, placed
    assert member_rows(session, second) == []
    assert job_row(session, second).status == "queued"


def test_a_reserved_member_is_what_its_workers_next_slot_runs(session: Session) -> None:
    add_workers(session, "a", "b")
    gang = add_job(session)
    host = place(gang, Slot("a", 1), 30)[0]
    assert host is not None and host.member == 0
    other = add_job(session, gpus=1, nodes=1, priority=9)

    # b's slot receives the other job's message: it starts the reserved member instead,
    # and hands that message back for another slot.
    lease, placed = place(other, Slot("b", 1), 30)

    assert lease is not None and (lease.job_id, lease.member) == (gang, 1), placed
    assert (lease.token, lease.attempt) == (host.token, host.attempt)
    assert placed.hand_back
    assert job_row(session, other).status == "queued"
    assert member_rows(session, gang) == [(0, "a", "running"), (1, "b", "running")]
    # Both slots are busy now: no third slot is free for anything.
    assert gangs.busy_slots(session) == {"a": 1, "b": 1}


def test_a_member_whose_lease_lapsed_is_named_by_the_others_renewal(session: Session) -> None:
    add_workers(session, "a", "b")
    gang = add_job(session)
    host = place(gang, Slot("a", 1), 30)[0]
    member = place(gang, Slot("b", 1), 30)[0]
    assert host is not None and member is not None
    assert gangs.renew(host, 30) == []

    session.execute(
        update(GangMember)
        .where(GangMember.job_id == gang, GangMember.member == 1)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()

    assert gangs.renew(host, 30) == [gangs.Lapsed(1, "b", "running")]
    error = gangs.lapsed_error(gangs.renew(host, 30) or [], host.attempt)
    assert error.message == "gang member 1 on worker b lost its lease (stopped heartbeating)"
    attempts.fail(host, error, {}, retry_in=0)
    assert gangs.renew(member, 30) is None  # the attempt is over for every member


def test_the_attempt_ends_with_its_last_member(session: Session) -> None:
    add_workers(session, "a", "b")
    gang = add_job(session)
    host = place(gang, Slot("a", 1), 30)[0]
    member = place(gang, Slot("b", 1), 30)[0]
    assert isinstance(host, Lease) and isinstance(member, Lease)

    attempts.finish(member, False, "member 1 done", {})
    assert job_row(session, gang).status == "running"
    assert gangs.busy_slots(session) == {"a": 1}  # b's slot is free again
    attempts.finish(host, False, "member 0 done", {})
    assert job_row(session, gang).status == "succeeded"


def test_a_retry_is_placed_afresh(session: Session) -> None:
    """A failed attempt's members are replaced: the retry's gang may use other workers."""
    add_workers(session, "a", "b", "c")
    gang = add_job(session)
    host = place(gang, Slot("a", 1), 30)[0]
    assert host is not None
    attempts.fail(host, gangs.lapsed_error([gangs.Lapsed(1, "b", "pending")], 1), {}, retry_in=0)
    session.execute(update(Worker).where(Worker.id == "b").values(status="dead"))
    session.commit()

    retry = place(gang, Slot("c", 1), 30)[0]

    assert retry is not None and retry.attempt == 2
    assert member_rows(session, gang) == [(0, "c", "running"), (1, "a", "pending")]


def test_a_preempted_gang_is_requeued_by_its_last_member(session: Session) -> None:
    add_workers(session, "a", "b")
    gang = add_job(session)
    host = place(gang, Slot("a", 1), 30)[0]
    member = place(gang, Slot("b", 1), 30)[0]
    assert host is not None and member is not None

    assert not attempts.preempted(member, "preempted", {})
    assert job_row(session, gang).status == "running"  # member 0 may still be relaying
    assert attempts.preempted(host, "preempted", {})
    job = job_row(session, gang)
    assert (job.status, job.attempt) == ("queued", 0)
