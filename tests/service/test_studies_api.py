"""`/studies` without workers: the deterministic expansion, the 422s naming the arm and
field, the operator bound, idempotency, tenancy and the cancel cascade."""

from typing import Any

import pytest

from store.tokens import create_token
from tests.conftest import bearer
from tests.service.helpers import train_body


def study_body(**changes: Any) -> dict[str, Any]:
    base = {k: v for k, v in train_body().items() if k != "kind"}
    return {
        "name": "losses",
        "base": {**base, "optim": {"prompts_per_step": 4, "mini_batch_prompts": 1,
                                   "micro_batch_size": 2}},
        "arms": {
            "dgpo": {},
            "grpo": {"algorithm.policy_loss.name": "grpo"},
        },
        "baseline": "dgpo",
        "seeds": [1, 2],
        "eval": {"benchmarks": ["gsm8k_mini"], "k": 2, "max_tokens": 8},
        **changes,
    }  # fmt: skip


@pytest.fixture
def people(session) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    return {
        "alice": bearer(create_token(session, "alice", "submit", "team-alice")),
        "bob": bearer(create_token(session, "bob", "submit", "team-bob")),
    }


def test_a_study_queues_one_train_job_per_arm_and_seed_in_order(client, people):
    r = client.post("/studies", json=study_body(), headers=people["alice"])
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["status"] == "queued" and study["warnings"] == []
    expansion = [(m["arm"], m["seed"], m["role"], m["status"]) for m in study["members"]]
    assert expansion == [
        ("dgpo", 1, "train", "queued"), ("dgpo", 1, "eval", "pending"),
        ("dgpo", 2, "train", "queued"), ("dgpo", 2, "eval", "pending"),
        ("grpo", 1, "train", "queued"), ("grpo", 1, "eval", "pending"),
        ("grpo", 2, "train", "queued"), ("grpo", 2, "eval", "pending"),
    ]  # fmt: skip
    for member in study["members"][::2]:
        job = client.get(f"/jobs/{member['job_id']}", headers=people["alice"]).json()
        assert job["spec"]["seed"] == member["seed"]
        assert job["spec"]["algorithm"]["policy_loss"]["name"] == member["arm"]
        assert job["spec"]["optim"]["mini_batch_prompts"] == 1  # the base's, kept
        assert job["metadata"] == {
            "study": study["id"], "arm": member["arm"], "seed": str(member["seed"]),
            "role": "train",
        }  # fmt: skip
    listed = client.get("/studies", headers=people["alice"]).json()["items"]
    assert [s["id"] for s in listed] == [study["id"]]


def test_the_same_idempotency_key_replays_the_study_and_its_jobs(client, people):
    headers = {**people["alice"], "Idempotency-Key": "study-1"}
    first = client.post("/studies", json=study_body(), headers=headers)
    again = client.post("/studies", json=study_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert [m["job_id"] for m in again.json()["members"]] == [
        m["job_id"] for m in first.json()["members"]
    ]
    jobs = client.get("/jobs?limit=100", headers=people["alice"]).json()["items"]
    assert len(jobs) == 4
    other = client.post("/studies", json=study_body(seeds=[7]), headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.text


@pytest.mark.parametrize(
    ("arms", "loc"),
    [
        ({"dgpo": {}, "bad": {"optim.lrr": 1e-5}}, ["body", "arms", "bad", "optim", "lrr"]),
        ({"dgpo": {}, "bad": {"algorithm": {"policy_los": {"name": "grpo"}}}},
         ["body", "arms", "bad", "algorithm", "policy_los"]),
        ({"dgpo": {}, "bad": {"optim.lr.x": 1}}, ["body", "arms", "bad", "optim", "lr"]),
        ({"dgpo": {}, "bad": {"algorithm.policy_loss.name": "nope"}},
         ["body", "arms", "bad", "algorithm", "policy_loss", "name"]),
        ({"dgpo": {}, "bad": {"optim.mini_batch_prompts": 3}}, ["body", "arms", "bad", "optim"]),
    ],
)  # fmt: skip
def test_a_bad_arm_is_a_422_naming_the_arm_and_field(client, people, arms, loc):
    r = client.post("/studies", json=study_body(arms=arms), headers=people["alice"])
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [loc]
    assert client.get("/jobs", headers=people["alice"]).json()["items"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"baseline": "cispo"}, "body"),
        ({"seeds": [1, 1]}, "body"),
        ({"arms": {}}, "arms"),
        ({"eval": {"benchmarks": ["nope"]}}, "eval"),
    ],
)
def test_a_bad_study_is_a_422_naming_the_field(client, people, changes, field):
    r = client.post("/studies", json=study_body(**changes), headers=people["alice"])
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] in (["body"], ["body", field])


def test_a_study_above_the_operator_bound_is_a_422_naming_seeds(client, people, monkeypatch):
    monkeypatch.setenv("DGPO_MAX_STUDY_JOBS", "6")
    from config.settings import get_settings

    get_settings.cache_clear()
    try:
        r = client.post("/studies", json=study_body(), headers=people["alice"])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "seeds"] and "at most 6" in error["msg"]


def test_arms_that_differ_only_in_the_loss_on_policy_are_warned_about(client, people):
    base = study_body()["base"]
    on_policy = {**base, "optim": {"prompts_per_step": 2, "mini_batch_prompts": 2,
                                   "micro_batch_size": 2}}  # fmt: skip
    r = client.post("/studies", json=study_body(base=on_policy), headers=people["alice"])
    assert r.status_code == 201 and "same gradient" in r.json()["warnings"][0]
    off = client.post("/studies", json=study_body(), headers=people["alice"])
    assert off.json()["warnings"] == []


def test_another_principals_study_is_404(client, people):
    study = client.post("/studies", json=study_body(), headers=people["alice"]).json()
    for suffix in ("", "/report"):
        r = client.get(f"/studies/{study['id']}{suffix}", headers=people["bob"])
        assert r.status_code == 404, (suffix, r.text)
    assert client.post(f"/studies/{study['id']}/cancel", headers=people["bob"]).status_code == 404
    assert client.get("/studies", headers=people["bob"]).json()["items"] == []


def test_cancel_cascades_to_every_unfinished_member(client, people):
    study = client.post("/studies", json=study_body(), headers=people["alice"]).json()
    r = client.post(f"/studies/{study['id']}/cancel", headers=people["alice"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "cancelled" and out["cancelled_at"]
    assert {m["status"] for m in out["members"]} == {"cancelled", "skipped"}
    for member in out["members"][::2]:
        job = client.get(f"/jobs/{member['job_id']}", headers=people["alice"]).json()
        assert job["status"] == "cancelled"
    assert out["incomplete_arms"] == ["dgpo", "grpo"]
