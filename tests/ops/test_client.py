"""DgpoClient against a real API over HTTP (uvicorn, Postgres, Redis)."""

import pytest

from dgpo.client import DgpoAPIError, DgpoClient
from tests.conftest import free_port
from tests.ops.conftest import METRIC_NAMES, STEPS, metric_values
from tests.service.helpers import eval_body, train_body


@pytest.fixture
def api(live_server, tokens):  # type: ignore[no-untyped-def]
    with DgpoClient(live_server, tokens["admin"]) as client:
        yield client


def test_submit_with_idempotency_key_returns_the_same_job(api):
    first = api.submit_job(train_body(), idempotency_key="nightly-1")
    again = api.submit_job(train_body(), idempotency_key="nightly-1")
    assert again["id"] == first["id"]
    assert api.get_job(first["id"])["status"] == "queued"


def test_submit_accepts_a_validated_spec_model(api):
    from trainer.spec.jobs import JOB_REQUEST_ADAPTER

    request = JOB_REQUEST_ADAPTER.validate_python(eval_body(priority=7))
    job = api.submit_job(request)
    assert (job["kind"], job["priority"], job["spec"]["k"]) == ("eval", 7, 2)


def test_list_filters_by_metadata_and_iterates_every_page(api):
    ids = {api.submit_job(train_body(metadata={"team": "a"}))["id"] for _ in range(5)}
    api.submit_job(train_body(metadata={"team": "b"}))
    page = api.list_jobs(metadata={"team": "a"}, limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert {j["id"] for j in api.iter_jobs(metadata={"team": "a"}, limit=2)} == ids


def test_read_side_returns_metrics_checkpoints_results_and_events(api, finished_job):
    job_id = finished_job["id"]
    points = api.job_metrics(job_id)
    assert [p["step"] for p in points] == list(range(1, STEPS + 1))
    assert points[-1]["values"] == pytest.approx(metric_values(STEPS))
    only = api.job_metrics(job_id, names=["kl/approx_k3"], min_step=10)
    assert [(p["step"], set(p["values"])) for p in only] == [
        (s, {"kl/approx_k3"}) for s in (10, 11, 12)
    ]
    assert [c["step"] for c in api.job_checkpoints(job_id)] == [6, 12]
    assert api.job_results(job_id)[0]["scores"]["pass@4"] == 0.6
    assert "finished" in [e["message"] for e in api.job_events(job_id)]
    assert api.wait_for_job(job_id, timeout=5)["status"] == "succeeded"
    assert len(METRIC_NAMES) == len(points[0]["values"])


def test_cancel_of_a_queued_job_is_immediate_and_idempotent(api):
    job = api.submit_job(train_body())
    assert api.cancel_job(job["id"])["status"] == "cancelled"
    assert api.cancel_job(job["id"])["status"] == "cancelled"


def test_queue_reports_queued_gpus_per_gpu_type(api):
    api.submit_job(train_body(resources={"gpus": 2, "gpu_type": "h100"}))
    rows = {(q["queue"], q["gpu_type"]): q for q in api.queue()["queues"]}
    assert rows[("gpu.h100", "h100")]["queued_gpus"] == 2
    assert api.workers() == []


@pytest.mark.parametrize(
    ("token_scope", "call", "status"),
    [
        (None, lambda c: c.list_jobs(), 401),
        ("read", lambda c: c.submit_job(train_body()), 403),
        ("read", lambda c: c.get_job("no-such-job"), 404),
    ],
)
def test_errors_carry_the_status_and_the_servers_detail(
    live_server, tokens, token_scope, call, status
):
    token = tokens[token_scope] if token_scope else None
    with DgpoClient(live_server, token) as client, pytest.raises(DgpoAPIError) as info:
        call(client)
    assert info.value.status == status
    assert info.value.detail and str(status) in str(info.value)


def test_invalid_spec_error_names_the_field(api):
    with pytest.raises(DgpoAPIError) as info:
        api.submit_job(train_body(total_steps=0))
    assert info.value.status == 422
    assert "total_steps" in str(info.value)


def test_unreachable_api_says_how_to_start_it():
    client = DgpoClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with client, pytest.raises(DgpoAPIError) as info:
        client.healthz()
    assert info.value.status == 0 and "dgpo up" in str(info.value)
