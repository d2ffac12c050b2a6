"""Specs that could only fail or wait forever are refused or flagged at submit time."""

from typing import Any

import pytest
from sqlalchemy.orm import Session

from store.models import Checkpoint, Job, JobStatus, Worker, WorkerStatus
from tests.conftest import bearer
from tests.service.helpers import eval_body, train_body


def submit(client, token: str, body: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post("/jobs", json=body, headers=bearer(token))


def _locs(response) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [e["loc"] for e in response.json()["detail"]]


def test_unknown_reward_name_is_422_naming_the_field(client, tokens) -> None:
    r = submit(client, tokens["submit"], train_body(algorithm={"reward": "mathh"}))
    assert r.status_code == 422
    assert ["body", "train", "algorithm", "reward"] in _locs(r)
    assert "'math'" in r.text and "'contains'" in r.text  # says what would be valid


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("total_steps", 10**11, ["total_steps"]),
        (
            "optim",
            {"prompts_per_step": 10**6, "mini_batch_prompts": 1},
            ["optim", "prompts_per_step"],
        ),
        ("algorithm", {"group_size": 10**5}, ["algorithm", "group_size"]),
        ("rollout", {"max_response_tokens": 10**9}, ["rollout", "max_response_tokens"]),
    ],
)
def test_absurd_sizes_are_422_naming_the_field(client, tokens, field, value, loc) -> None:
    r = submit(client, tokens["submit"], train_body(**{field: value}))
    assert r.status_code == 422, r.text
    assert ["body", "train", *loc] in _locs(r)


def test_absurd_eval_k_is_422(client, tokens) -> None:
    r = submit(client, tokens["submit"], eval_body(k=10**7))
    assert r.status_code == 422
    assert ["body", "eval", "k"] in _locs(r)


def _train_job(session: Session, status: JobStatus, steps: list[int]) -> str:
    job_id = submit_train(session, status)
    for step in steps:
        session.add(Checkpoint(job_id=job_id, step=step, uri=f"/c/{step}", sha256="0" * 64,
                               size_bytes=1))  # fmt: skip
    session.commit()
    return job_id


def submit_train(session: Session, status: JobStatus) -> str:
    from store.jobs import new_job
    from store.models import DEFAULT_PRINCIPAL
    from trainer.spec import TrainJobRequest

    new = new_job(TrainJobRequest.model_validate(train_body()), None, DEFAULT_PRINCIPAL)
    session.add(Job(**{**new.values, "metadata_": new.values.pop("metadata"), "status": status}))
    session.commit()
    return new.id


def _eval_of(job_id: str, step: int | str) -> dict[str, Any]:
    return eval_body(model={"checkpoint": {"job_id": job_id, "step": step}})


def test_checkpoint_ref_to_a_missing_job_is_422_naming_job_id(client, tokens) -> None:
    r = submit(client, tokens["submit"], _eval_of("no-such-job", "latest"))
    assert r.status_code == 422, r.text
    assert _locs(r) == [["body", "eval", "model", "checkpoint", "job_id"]]
    assert "no job with id 'no-such-job'" in r.text


def test_checkpoint_ref_to_a_missing_step_is_422_listing_the_steps(client, tokens, session):
    job_id = _train_job(session, JobStatus.SUCCEEDED, [10, 20])
    r = submit(client, tokens["submit"], _eval_of(job_id, 15))
    assert r.status_code == 422, r.text
    assert _locs(r) == [["body", "eval", "model", "checkpoint", "step"]]
    assert "[10, 20]" in r.text
    assert submit(client, tokens["submit"], _eval_of(job_id, 20)).status_code == 201


def test_checkpoint_ref_latest_needs_a_checkpoint_once_the_job_ended(client, tokens, session):
    ended = _train_job(session, JobStatus.FAILED, [])
    r = submit(client, tokens["submit"], _eval_of(ended, "latest"))
    assert r.status_code == 422 and "ended failed with no checkpoint" in r.text
    running = _train_job(session, JobStatus.RUNNING, [])  # may checkpoint yet
    assert submit(client, tokens["submit"], _eval_of(running, "latest")).status_code == 201


def test_checkpoint_ref_to_an_eval_job_is_422(client, tokens) -> None:
    eval_id = submit(client, tokens["submit"], eval_body()).json()["id"]
    r = submit(client, tokens["submit"], _eval_of(eval_id, "latest"))
    assert r.status_code == 422 and "is an eval job" in r.text


def test_unserved_queue_is_a_warning_in_the_201_and_on_the_queue(client, tokens, session):
    body = train_body(resources={"gpus": 1, "gpu_type": "h100"})
    r = submit(client, tokens["submit"], body)
    assert r.status_code == 201
    assert r.json()["warnings"][0].startswith("no live worker serves queue gpu.h100")
    queue = client.get("/queue", headers=bearer(tokens["read"])).json()
    assert [w.split(";")[0] for w in queue["warnings"]] == ["no live worker serves queue gpu.h100"]

    session.add(
        Worker(id="w@h", host="h", queues=["gpu.h100"], gpu_count=1, status=WorkerStatus.ALIVE)
    )
    session.commit()
    assert submit(client, tokens["submit"], body).json()["warnings"] == []
    assert client.get("/queue", headers=bearer(tokens["read"])).json()["warnings"] == []
