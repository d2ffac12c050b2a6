"""`dgpo workers list|drain` and `dgpo usage` as a user runs them, against a real API."""

import json

from sqlalchemy.orm import Session

from store import attempts
from store.leases import claim
from store.models import Job, Worker
from tests.ops.test_cli import dgpo


def test_workers_drain_and_list(live_server, tokens, session: Session) -> None:
    session.add(Worker(id="gpu-node-1@h", host="h", gpu_type="h100", gpu_count=8, slots=8,
                       queues=["gpu.h100"]))  # fmt: skip
    session.commit()
    refused = dgpo(live_server, tokens["submit"], "workers", "drain", "gpu-node-1@h")
    assert refused.returncode != 0 and "403" in refused.stderr + refused.stdout
    drained = dgpo(live_server, tokens["admin"], "workers", "drain", "gpu-node-1@h")
    assert drained.returncode == 0, drained.stderr
    assert "gpu-node-1@h  drained" in drained.stdout
    listed = dgpo(live_server, tokens["read"], "workers", "list", "--json")
    assert [(w["id"], w["status"]) for w in json.loads(listed.stdout)] == [
        ("gpu-node-1@h", "drained")
    ]


def test_workers_drain_preempt_hands_the_running_job_back(
    live_server, tokens, session: Session
) -> None:
    session.add(Worker(id="spot@h", host="h", queues=["cpu"]))
    job = Job(kind="train", spec={"resources": {"gpus": 0}}, queue="cpu")
    session.add(job)
    session.commit()
    assert claim(job.id, "spot@h", 30) is not None
    out = dgpo(live_server, tokens["admin"], "workers", "drain", "spot@h", "--preempt")
    assert out.returncode == 0, out.stderr
    assert "spot@h  draining (1 job(s) being preempted)" in out.stdout
    session.expire_all()
    assert session.get_one(Job, job.id).preempt_requested_at is not None


def test_usage_prints_gpu_hours_per_principal(live_server, tokens, session: Session) -> None:
    job = Job(kind="train", spec={"resources": {"gpus": 2, "gpu_type": "h100"}}, queue="gpu.h100")
    session.add(job)
    session.commit()
    lease = claim(job.id, "w@test", 30)
    assert lease is not None
    attempts.finish(lease, False, "done", {})
    out = dgpo(live_server, tokens["admin"], "usage", "--by", "principal", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)["rows"]
    assert (row["key"], row["attempts"]) == ("default", 1)
    table = dgpo(live_server, tokens["admin"], "usage")
    assert "gpu_hours" in table.stdout and "default" in table.stdout
