"""Limits a group of principals shares (`DGPO_GROUPS`): concurrent GPUs in the claim
order (a hard cap, or borrowing while nobody within quota waits) and queued jobs at
submit (429 naming the group). Real Postgres; the slots are `place` calls."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session

from config.fleet_policy import GroupPolicy
from config.settings import Settings, get_settings
from store.leases import place
from store.models import Job, TokenScope
from store.placement import Slot
from store.tokens import create_token
from tests.conftest import bearer
from tests.service.helpers import train_body


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, GroupPolicy]]:
    chosen: dict[str, GroupPolicy] = {}
    monkeypatch.setattr(get_settings(), "groups", chosen)
    monkeypatch.setattr(get_settings(), "principals", {})
    yield chosen


def gpu_job(session: Session, owner: str) -> str:
    spec = {"resources": {"gpus": 1, "gpu_type": "any"}}
    job = Job(kind="train", spec=spec, queue="gpu.any", owner=owner)
    session.add(job)
    session.commit()
    return job.id


def test_a_group_at_its_hard_gpu_cap_claims_no_more_for_any_member(
    session: Session, groups: dict[str, GroupPolicy]
) -> None:
    groups["research"] = GroupPolicy(members=["a", "b"], nominal_gpus={"any": 1}, can_borrow=False)
    running = gpu_job(session, "a")
    assert place(running, Slot("w1@h", 1), 30)[0] is not None
    waiting = gpu_job(session, "b")  # b is within its own (unlimited) quota, not the group's
    lease, placed = place(waiting, Slot("w2@h", 1), 30)
    assert lease is None and placed.hand_back, placed
    outsider = gpu_job(session, "c")
    lease, _ = place(waiting, Slot("w2@h", 1), 30)
    assert lease is not None and lease.job_id == outsider


def test_a_group_over_its_nominal_gpus_borrows_behind_jobs_within_quota(
    session: Session, groups: dict[str, GroupPolicy]
) -> None:
    groups["research"] = GroupPolicy(members=["a", "b"], nominal_gpus={"any": 1})
    assert place(gpu_job(session, "a"), Slot("w1@h", 1), 30)[0] is not None
    borrowing = gpu_job(session, "b")
    within = gpu_job(session, "c")  # c holds more share after this claim, a and b none left
    lease, _ = place(borrowing, Slot("w2@h", 1), 30)
    assert lease is not None and lease.job_id == within
    lease, _ = place(borrowing, Slot("w3@h", 1), 30)  # nobody within quota waits: borrow
    assert lease is not None and lease.job_id == borrowing


def test_a_group_over_its_queued_limit_gets_429_naming_the_group(
    client: TestClient, session: Session, groups: dict[str, GroupPolicy]
) -> None:
    groups["research"] = GroupPolicy(members=["a", "b"], max_queued_jobs=2)
    a, b, c = (bearer(create_token(session, t, TokenScope.SUBMIT, t)) for t in "abc")
    assert client.post("/jobs", json=train_body(), headers=a).status_code == 201
    assert client.post("/jobs", json=train_body(), headers=b).status_code == 201
    refused = client.post("/jobs", json=train_body(), headers=a)
    assert refused.status_code == 429, refused.text
    assert "group 'research' already has 2 queued jobs" in refused.json()["detail"]
    assert "max_queued_jobs=2 (DGPO_GROUPS)" in refused.json()["detail"]
    assert client.post("/jobs", json=train_body(), headers=c).status_code == 201


def test_a_principal_belongs_to_one_group(monkeypatch: pytest.MonkeyPatch) -> None:
    doubled = '{"x": {"members": ["a"]}, "y": {"members": ["b", "a"]}}'
    monkeypatch.setenv("DGPO_GROUPS", doubled)
    with pytest.raises(ValidationError, match="'a' is a member of both 'x' and 'y'"):
        Settings()
