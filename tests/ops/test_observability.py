"""JSON logs carry the job and attempt; /metrics exposes what fleet alerts are built on."""

import json
import logging
import threading
from datetime import timedelta

from config.logs import JsonFormatter, job_log_context
from tests.conftest import bearer
from tests.ops.conftest import submit
from tests.service.helpers import train_body


def _capture() -> tuple[logging.Logger, list[str]]:
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = ListHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"dgpo.test.{id(lines)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, lines


def test_every_line_inside_a_job_context_carries_job_id_attempt_and_extras():
    log, lines = _capture()
    with job_log_context("job-1", attempt=2):
        log.info("claimed %s", "slot-0", extra={"queue": "gpu.h100"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("step failed")
    log.info("idle")
    first, failure, idle = (json.loads(line) for line in lines)
    assert (first["msg"], first["job_id"], first["attempt"], first["queue"]) == (
        "claimed slot-0", "job-1", 2, "gpu.h100",
    )  # fmt: skip
    assert failure["level"] == "ERROR" and "RuntimeError: boom" in failure["exc"]
    assert (idle["job_id"], idle["attempt"]) == (None, None)


def test_job_context_does_not_leak_between_concurrent_threads():
    log, lines = _capture()
    barrier = threading.Barrier(2)

    def work(job_id: str) -> None:
        with job_log_context(job_id, attempt=1):
            barrier.wait()
            log.info("tick")

    threads = [threading.Thread(target=work, args=(f"job-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(json.loads(line)["job_id"] for line in lines) == ["job-0", "job-1"]


def test_prometheus_exposes_queue_wait_per_gpu_type_durations_and_heartbeats(
    client, tokens, session
):
    from store.models import Job, Worker, utcnow

    queued = submit(client, tokens["submit"], train_body(resources={"gpus": 4, "gpu_type": "a100"}))
    done = submit(client, tokens["submit"], train_body())
    job = session.get(Job, done["id"])
    job.status, job.started_at = "succeeded", utcnow() - timedelta(minutes=10)
    job.finished_at = job.started_at + timedelta(seconds=600)
    queued_row = session.get(Job, queued["id"])
    queued_row.queued_at = utcnow() - timedelta(seconds=120)
    session.add(Worker(id="w1@host", host="host", gpu_type="a100", gpu_count=8,
                       heartbeat_at=utcnow() - timedelta(seconds=30)))  # fmt: skip
    session.commit()

    text = client.get("/metrics", headers=bearer(tokens["read"])).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    wait = samples['dgpo_queue_oldest_wait_seconds{gpu_type="a100",queue="gpu.a100"}']
    assert 120 <= wait < 180
    assert samples['dgpo_queue_requested_gpus{gpu_type="a100",queue="gpu.a100"}'] == 4
    bucket = 'dgpo_job_duration_seconds_bucket{kind="train",le="{le}",status="succeeded"}'
    assert samples[bucket.replace("{le}", "300")] == 0
    assert samples[bucket.replace("{le}", "900")] == 1
    assert samples['dgpo_job_duration_seconds_sum{kind="train",status="succeeded"}'] == 600
    age = samples[
        'dgpo_worker_heartbeat_age_seconds{gpu_type="a100",status="alive",worker="w1@host"}'
    ]
    assert 30 <= age < 90
