"""Which job a free slot claims: one that fits it, in weighted fair-share order, within
its principal's quota (`store.placement`). Real Postgres; the slots are `place` calls, so
40 jobs take a second (the worker e2e tests prove the same with real processes)."""

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.fleet_policy import PrincipalPolicy
from config.settings import get_settings
from store import attempts
from store.leases import Lease, place
from store.models import AttemptUsage, Job, Worker, utcnow
from store.placement import Slot


def add_jobs(session: Session, owner: str, n: int, gpus: int = 0, **fields: Any) -> list[str]:
    resources = {"gpus": gpus, "gpu_type": "any"}
    queue = "gpu.any" if gpus else "cpu"
    jobs = [
        Job(kind="train", spec={"resources": resources}, queue=queue, owner=owner, **fields)
        for _ in range(n)
    ]
    session.add_all(jobs)
    session.commit()
    return [job.id for job in jobs]


@pytest.fixture
def principals(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, PrincipalPolicy]]:
    """The operator's per-principal policies for this test (empty: defaults for all)."""
    chosen: dict[str, PrincipalPolicy] = {}
    monkeypatch.setattr(get_settings(), "principals", chosen)
    yield chosen


def owner_of(session: Session, job_id: str) -> str:
    return session.scalar(select(Job.owner).where(Job.id == job_id)) or ""


def claim_next(session: Session, slot: Slot) -> Lease | None:
    """What `slot` claims when the message of the oldest queued job reaches it."""
    session.expire_all()
    message = session.scalar(select(Job.id).where(Job.status == "queued").order_by(Job.created_at))
    assert message is not None, "nothing queued"
    return place(message, slot, 30)[0]


def finish(lease: Lease) -> None:
    attempts.finish(lease, False, "done", {})


def test_a_two_gpu_job_is_never_claimed_by_a_one_gpu_slot(session: Session) -> None:
    (wide,) = add_jobs(session, "a", 1, gpus=2)
    lease, placed = place(wide, Slot("narrow@test", 1), 30)
    assert lease is None and placed.hand_back, placed
    assert "needs 2 GPUs; this slot holds 1" in placed.reason
    session.expire_all()
    job = session.get_one(Job, wide)
    assert (job.status, job.attempt) == ("queued", 0)  # handed back, no attempt counted
    lease, _ = place(wide, Slot("wide@test", 2), 30)
    assert lease is not None and lease.job_id == wide


def test_a_job_needing_more_gpu_memory_than_the_worker_reports_is_not_claimed(
    session: Session,
) -> None:
    session.add_all(
        [
            Worker(id="a100-40@h", host="h", queues=["gpu.any"], gpu_count=1, gpu_memory_mb=40960),
            Worker(id="h100@h", host="h", queues=["gpu.any"], gpu_count=1, gpu_memory_mb=81920),
        ]
    )
    (big,) = add_jobs(session, "a", 1, gpus=1)
    session.execute(
        update(Job).values(
            spec={"resources": {"gpus": 1, "gpu_type": "any", "gpu_memory_mb": 80000}}
        )
    )
    session.commit()
    lease, placed = place(big, Slot("a100-40@h", 1), 30)
    assert lease is None and placed.hand_back
    assert "needs 80000 MiB per GPU; this worker's have 40960" in placed.reason
    lease, _ = place(big, Slot("h100@h", 1), 30)
    assert lease is not None and lease.job_id == big


def test_a_one_gpu_slot_takes_a_fitting_job_behind_a_two_gpu_one(session: Session) -> None:
    (wide,) = add_jobs(session, "a", 1, gpus=2)
    (narrow,) = add_jobs(session, "a", 1, gpus=1)
    lease, placed = place(wide, Slot("narrow@test", 1), 30)
    assert lease is not None and lease.job_id == narrow
    assert placed.hand_back  # the 2-GPU job's message was spent: it goes back to the queue


def test_two_principals_of_equal_weight_alternate_on_two_slots(
    session: Session, principals: dict[str, PrincipalPolicy]
) -> None:
    """Team a submits its 20 jobs first, then team b its 20; two slots serve them. FIFO
    would run all of a's first; fair share alternates from the start."""
    ids = add_jobs(session, "a", 20) + add_jobs(session, "b", 20)
    slots = [Slot("w@test", 0), Slot("w@test", 0)]
    running: list[Lease] = []
    order: list[str] = []
    messages = iter(ids)
    while len(order) < 40:
        while len(running) < len(slots) and len(order) < 40:
            lease, _ = place(next(messages), slots[len(running)], 30)
            if lease is None:
                continue  # a message of a job already claimed by another's message
            running.append(lease)
            order.append(owner_of(session, lease.job_id))
        finish(running.pop(0))  # the oldest attempt ends first
        messages = iter(
            session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.created_at))
        )
    pairs = [Counter(order[i : i + 2]) for i in range(0, 40, 2)]
    assert all(p == Counter({"a": 1, "b": 1}) for p in pairs), order
    assert Counter(order[:20]) == Counter({"a": 10, "b": 10}), order


def test_a_heavier_weight_gets_proportionally_more_slots(
    session: Session, principals: dict[str, PrincipalPolicy]
) -> None:
    principals["a"] = PrincipalPolicy(weight=2)
    add_jobs(session, "a", 6)
    add_jobs(session, "b", 6)
    held = [claim_next(session, Slot("w@test", 0)) for _ in range(3)]
    assert Counter(owner_of(session, lease.job_id) for lease in held if lease) == Counter(
        {"a": 2, "b": 1}
    )


def test_priority_orders_jobs_within_a_principal_not_across_principals(session: Session) -> None:
    (_low,) = add_jobs(session, "a", 1, priority=0)
    (high,) = add_jobs(session, "a", 1, priority=9)
    (other,) = add_jobs(session, "b", 1, priority=0)
    first, second = claim_next(session, Slot("w@test", 0)), claim_next(session, Slot("w@test", 0))
    assert first is not None and second is not None
    assert {first.job_id, second.job_id} == {high, other}


def test_a_principal_past_its_nominal_gpus_borrows_only_while_nobody_else_waits(
    session: Session, principals: dict[str, PrincipalPolicy]
) -> None:
    principals["a"] = PrincipalPolicy(nominal_gpus={"any": 1})
    add_jobs(session, "a", 3, gpus=1)
    first = claim_next(session, Slot("w@test", 1))
    borrowed = claim_next(session, Slot("w@test", 1))  # nobody else waits: a borrows
    assert first is not None and borrowed is not None
    (b,) = add_jobs(session, "b", 1, gpus=1)
    add_jobs(session, "a", 1, gpus=1, priority=9)
    third = claim_next(session, Slot("w@test", 1))
    assert third is not None and third.job_id == b  # within its quota beats borrowing


def test_a_principal_that_may_not_borrow_waits_at_its_nominal_gpus(
    session: Session, principals: dict[str, PrincipalPolicy]
) -> None:
    principals["a"] = PrincipalPolicy(nominal_gpus={"any": 1}, can_borrow=False)
    a = add_jobs(session, "a", 2, gpus=1)
    assert claim_next(session, Slot("w@test", 1)) is not None
    lease, placed = place(a[1], Slot("w@test", 1), 30)
    assert lease is None and placed.hand_back
    assert "quota" in placed.reason


def test_a_job_in_its_back_off_is_not_claimed_and_not_handed_back(session: Session) -> None:
    (job,) = add_jobs(session, "a", 1, not_before=utcnow() + timedelta(seconds=60))
    lease, placed = place(job, Slot("w@test", 0), 30)
    assert lease is None and not placed.hand_back, placed
    session.execute(update(Job).values(not_before=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert place(job, Slot("w@test", 0), 30)[0] is not None


def test_recent_usage_breaks_ties_between_principals(
    session: Session, principals: dict[str, PrincipalPolicy]
) -> None:
    """Equal current share (nothing running): the principal that used less lately goes first."""
    (done,) = add_jobs(session, "a", 1)
    lease, _ = place(done, Slot("w@test", 0), 30)
    assert lease is not None
    finish(lease)
    add_jobs(session, "a", 1)
    (b,) = add_jobs(session, "b", 1)
    lease = claim_next(session, Slot("w@test", 0))
    assert lease is not None and lease.job_id == b
    usage = session.scalars(select(AttemptUsage)).all()
    assert [(u.job_id, u.outcome, u.attempt) for u in usage] == [(done, "succeeded", 1)]
