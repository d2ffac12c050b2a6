"""/queue, /workers and Prometheus /metrics: what the fleet scheduler and monitoring read."""

from datetime import timedelta

from sqlalchemy import update

from store.fleet import REQUESTED_GPUS
from store.models import Job, JobStatus, Worker, utcnow
from tests.conftest import bearer
from tests.service.helpers import eval_body, train_body


def test_queue_counts_jobs_and_gpus_per_queue_and_gpu_type(client, tokens, session):
    h = bearer(tokens["submit"])
    for resources in ({"gpus": 2, "gpu_type": "h100"}, {"gpus": 4, "gpu_type": "h100"}, {}):
        client.post("/jobs", json=train_body(resources=resources), headers=h)
    running = client.post("/jobs", json=train_body(resources={"gpus": 1}), headers=h).json()
    old = utcnow() - timedelta(minutes=10)
    session.execute(update(Job).where(REQUESTED_GPUS == 4).values(queued_at=old))
    session.execute(update(Job).where(Job.id == running["id"]).values(status=JobStatus.RUNNING))
    session.commit()

    body = client.get("/queue", headers=bearer(tokens["read"])).json()
    rows = {(r["queue"], r["gpu_type"]): r for r in body["queues"]}
    h100 = rows[("gpu.h100", "h100")]
    assert (h100["queued"], h100["queued_gpus"], h100["running"]) == (2, 6, 0)
    assert 590 < h100["oldest_wait_seconds"] < 700
    assert rows[("cpu", "any")]["queued"] == 1
    anyq = rows[("gpu.any", "any")]
    assert (anyq["queued"], anyq["running"], anyq["running_gpus"]) == (0, 1, 1)


def test_workers_lists_registered_workers_and_filters_by_status(client, tokens, session):
    session.add_all(
        [
            Worker(
                id="w1",
                host="gpu-node-1",
                gpu_type="h100",
                gpu_count=8,
                gpu_memory_mb=81920,
                queues=["gpu.h100", "gpu.any"],
                slots=8,
                running_job_ids=["j1"],
            ),
            Worker(id="w2", host="cpu-node", queues=["cpu"], status="dead"),
        ]
    )
    session.commit()
    h = bearer(tokens["read"])
    workers = client.get("/workers", headers=h).json()
    assert [(w["id"], w["gpu_count"], w["queues"]) for w in workers] == [
        ("w1", 8, ["gpu.h100", "gpu.any"]),
        ("w2", 0, ["cpu"]),
    ]
    alive = client.get("/workers", params={"status": "alive"}, headers=h).json()
    assert [w["id"] for w in alive] == ["w1"]
    queue = client.get("/queue", headers=h).json()
    assert (queue["workers_alive"], queue["slots_alive"]) == (1, 8)
    assert client.get("/workers", params={"status": "zombie"}, headers=h).status_code == 422


def test_prometheus_metrics_expose_jobs_by_status_depth_and_latency(client, tokens):
    client.post("/jobs", json=train_body(), headers=bearer(tokens["submit"]))
    client.post("/jobs", json=eval_body(), headers=bearer(tokens["submit"]))
    r = client.get("/metrics", headers=bearer(tokens["read"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'dgpo_jobs{status="queued"} 2.0' in text
    assert 'dgpo_queue_depth{queue="cpu"} 2.0' in text
    assert (
        'dgpo_http_request_duration_seconds_count{method="POST",route="/jobs",status="201"} 2.0'
        in text
    )
    assert "dgpo_submit_batch_size_sum 2.0" in text  # sequential posts: batches of one
    assert "dgpo_submit_batch_size_count 2.0" in text
