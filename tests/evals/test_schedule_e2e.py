"""End to end on CPU: a schedule triggered twice runs two real eval jobs on a real worker
(the tiny model over a slice of two benchmarks) and records a verdict for each run."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import bearer
from tests.workers.conftest import WorkerProcess, wait_for


@pytest.fixture
def eval_worker(clean_db: str, redis_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A `dgpo worker` on the cpu queue (amc23 and math500 ship with the package)."""
    worker = WorkerProcess("evals", "cpu", tmp_path / "worker.log")
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_schedule_triggered_twice_runs_two_evals_with_verdicts(
    client, tokens, tiny_model_dir, eval_worker
):
    body = {
        "name": "nightly-tiny",
        "cron": "0 3 * * *",
        "eval": {"benchmarks": ["amc23", "math500"], "k": 2, "max_tokens": 8,
                 "max_problems": 2, "pass_k": [1, 2]},
        "target": {"model_path": tiny_model_dir},
        "baseline": "previous",
    }  # fmt: skip
    submit, read = bearer(tokens["submit"]), bearer(tokens["read"])
    sid = client.post("/schedules", json=body, headers=submit).json()["id"]

    def settled_runs() -> list[dict]:
        runs = client.get(f"/schedules/{sid}/runs", headers=read).json()
        return runs if all(r["finished_at"] for r in runs) else []

    for _ in range(2):
        assert client.post(f"/schedules/{sid}/trigger", headers=submit).status_code == 201
        wait_for(settled_runs, "the run to settle", timeout=180)

    second, first = settled_runs()
    for run in (first, second):
        job = client.get(f"/jobs/{run['job_id']}", headers=read).json()
        assert job["status"] == "succeeded", eval_worker.output()
        results = client.get(f"/jobs/{run['job_id']}/results", headers=read).json()
        assert sorted(r["benchmark"] for r in results) == ["amc23", "math500"]
        assert all(len(r["per_problem"]["problems"]) == 2 for r in results)
    assert first["verdict"] == "no baseline" and first["comparison"]["baseline_job_id"] is None
    assert second["verdict"] in {"pass", "regression", "improvement"}
    assert second["comparison"]["baseline_job_id"] == first["job_id"]
    compared = sorted(c["benchmark"] for c in second["comparison"]["benchmarks"])
    assert compared == ["amc23", "math500"]
    # Same model, same seed: identical samples, so no change on any problem.
    assert all(c["difference"] == 0.0 for c in second["comparison"]["benchmarks"])
    assert second["verdict"] == "pass"
