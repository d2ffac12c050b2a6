"""Which running job a waiting one preempts (`store.preemption`): the claim order decides,
on a hard ground (priority, fair share, borrowed quota), never twice for one job, never a
non-preemptible job, and not at all when the operator turns it off. Real Postgres; the
slots are `place` calls (tests/workers/test_preemption_e2e.py runs real workers)."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.fleet_policy import PreemptionPolicy, PrincipalPolicy
from config.settings import get_settings
from store import attempts, preemption, workers
from store.db import get_sessionmaker
from store.leases import Lease, place
from store.models import Job, JobEvent, Worker
from store.placement import Slot
from tests.conftest import bearer

WORKER = "w@h"


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """This test's operator settings: preemption on, default principals."""
    monkeypatch.setattr(get_settings(), "principals", {})
    monkeypatch.setattr(get_settings(), "preemption", PreemptionPolicy())
    yield {}


def worker(session: Session, slots: int = 1, worker_id: str = WORKER) -> Slot:
    session.add(Worker(id=worker_id, host="h", queues=["gpu.any"], gpu_count=slots, slots=slots))
    session.commit()
    return Slot(worker_id, 1)


def job(session: Session, owner: str = "a", priority: int = 0, **resources: Any) -> str:
    spec = {"resources": {"gpus": 1, "gpu_type": "any", **resources}}
    row = Job(kind="train", spec=spec, queue="gpu.any", owner=owner, priority=priority)
    session.add(row)
    session.commit()
    return row.id


def run(session: Session, job_id: str, slot: Slot) -> Lease:
    lease, placed = place(job_id, slot, 60)
    assert lease is not None and lease.job_id == job_id, placed
    return lease


def decide(session: Session) -> list[tuple[str, str]]:
    """One reconciler pass's preemption decisions, committed in a session of its own."""
    with get_sessionmaker()() as own, own.begin():
        found = [(d.victim, d.waiting) for d in preemption.preempt(own)]
    session.expire_all()
    return found


def test_a_higher_priority_job_preempts_the_running_one_once_and_takes_its_slot(
    session: Session, policy: dict[str, Any]
) -> None:
    slot = worker(session)
    low = run(session, job(session, priority=0), slot)
    high = job(session, priority=9)
    assert decide(session) == [(low.job_id, high)]
    asked = session.get_one(Job, low.job_id)
    assert (asked.status, asked.preempt_requested_at is not None) == ("running", True)
    assert decide(session) == []  # its slot is about to be free: nobody else is asked
    assert attempts.preempted(low, "preempted at a step boundary", {"stopped": "step_boundary"})
    session.expire_all()
    back = session.get_one(Job, low.job_id)
    assert (back.status, back.attempt, back.preempt_requested_at) == ("queued", 0, None)
    kinds = session.scalars(
        select(JobEvent.kind).where(JobEvent.job_id == low.job_id).order_by(JobEvent.id)
    ).all()
    assert kinds == ["status", "preempt_requested", "preempted", "status"]
    preempted = session.scalar(select(JobEvent).where(JobEvent.kind == "preempted"))
    assert preempted is not None and preempted.data["latency_s"] >= 0
    # The freed slot claims the waiting job, whichever job's message reaches it.
    assert run(session, high, slot).job_id == high
    assert decide(session) == []  # the preempted job does not preempt back


def test_nothing_is_preempted_while_a_slot_that_fits_is_free(
    session: Session, policy: dict[str, Any]
) -> None:
    slot = worker(session, slots=2)
    run(session, job(session), slot)
    job(session, priority=9)
    assert decide(session) == []


@pytest.mark.parametrize("running", [{}, {"preemptible": False}])
def test_an_equal_job_or_a_non_preemptible_one_is_not_preempted(
    session: Session, policy: dict[str, Any], running: dict[str, Any]
) -> None:
    slot = worker(session)
    held = run(session, job(session, priority=0, **running), slot)
    job(session, priority=9 if running else 0)
    assert decide(session) == []
    assert session.get_one(Job, held.job_id).preempt_requested_at is None


def test_the_operator_can_turn_preemption_off(
    session: Session, policy: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    slot = worker(session)
    run(session, job(session, priority=0), slot)
    job(session, priority=9)
    monkeypatch.setattr(get_settings(), "preemption", PreemptionPolicy(enabled=False))
    assert decide(session) == []


def test_a_principal_below_its_fair_share_preempts_one_holding_every_slot(
    session: Session, policy: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    slot = worker(session, slots=2)
    first, second = run(session, job(session, "a"), slot), run(session, job(session, "a"), slot)
    waiting = job(session, "b")
    monkeypatch.setattr(get_settings(), "preemption", PreemptionPolicy(fair_share=False))
    assert decide(session) == []  # equal priority: only fair share would preempt
    monkeypatch.setattr(get_settings(), "preemption", PreemptionPolicy())
    ((victim, for_job),) = decide(session)
    assert victim in (first.job_id, second.job_id) and for_job == waiting
    assert grounds(session) == ["fair_share"]


def test_a_principal_within_its_quota_reclaims_a_slot_another_borrows(
    session: Session, policy: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    quotas = {"a": PrincipalPolicy(nominal_gpus={"any": 0}), "b": PrincipalPolicy(weight=0.5)}
    monkeypatch.setattr(get_settings(), "principals", quotas)
    slot = worker(session, slots=2)
    borrowed = run(session, job(session, "a"), slot)
    run(session, job(session, "b"), slot)
    waiting = job(session, "b")
    # b holds 1 GPU at weight 0.5 (share 2), a holds 1 at weight 1 (share 1, with its job
    # back: 0): b's share is higher, but a borrows beyond its nominal 0 GPUs.
    assert decide(session) == [(borrowed.job_id, waiting)]
    assert grounds(session) == ["quota"]


def test_a_waiting_multi_node_job_preempts_nothing(
    session: Session, policy: dict[str, Any]
) -> None:
    """A gang needs K slots at once; preempting one running job for it would free one slot
    of the K and lose that job's step for nothing, so a gang waits for free slots."""
    slot = worker(session)
    run(session, job(session, priority=0), slot)
    job(session, priority=9, gpus=2, nodes=2)
    assert decide(session) == []


def grounds(session: Session) -> list[str]:
    events = session.scalars(
        select(JobEvent).where(JobEvent.kind == "preempt_requested").order_by(JobEvent.id)
    ).all()
    return [e.data["ground"] for e in events]


def test_each_request_records_its_ground_and_metrics_count_them_with_the_latency(
    session: Session,
    policy: dict[str, Any],
    client: TestClient,
    tokens: dict[str, str],
) -> None:
    """Prometheus counts requests by a bounded ground (not the reason's words, which name
    jobs) and sums the latency of those that ended."""
    slot = worker(session)
    low = run(session, job(session, "a", priority=0), slot)
    job(session, "a", priority=9)
    decide(session)
    assert attempts.preempted(low, "preempted at a step boundary", {"stopped": "step_boundary"})
    other = worker(session, worker_id="x@h")
    run(session, job(session, "c"), other)
    workers.drain("x@h", preempt=True)
    assert grounds(session) == ["priority", "drain"]

    text = client.get("/metrics", headers=bearer(tokens["read"])).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    where = (("gpu_type", "any"), ("queue", "gpu.any"))
    for ground in ("drain", "priority"):
        key = ("dgpo_preemptions_requested_total", tuple(sorted({*where, ("ground", ground)})))
        assert samples[key] == 1.0
    assert samples[("dgpo_preemption_latency_seconds_count", where)] == 1.0
    (event,) = session.scalars(select(JobEvent).where(JobEvent.kind == "preempted")).all()
    assert samples[("dgpo_preemption_latency_seconds_sum", where)] == event.data["latency_s"]
