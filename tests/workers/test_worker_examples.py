"""The CPU examples run as shipped: each file, unchanged, on a real `dgpo worker`."""

import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, bearer
from tests.workers.conftest import Api, WorkerProcess, wait_for

pytestmark = pytest.mark.slow
CPU_EXAMPLES = sorted((REPO_ROOT / "examples").glob("*-cpu-*.yaml"))


def test_there_is_a_cpu_train_and_eval_example() -> None:
    assert {p.name.split("-")[0] for p in CPU_EXAMPLES} == {"train", "eval"}


@pytest.mark.parametrize("example", CPU_EXAMPLES, ids=lambda p: p.name)
def test_cpu_example_succeeds_unchanged_on_a_worker_within_a_minute(
    example: Path, api: Api, tokens: dict[str, str], cpu_worker: WorkerProcess
) -> None:
    wait_for(lambda: api.worker(cpu_worker.name), "the worker to re-register after clean_db")
    body = yaml.safe_load(example.read_text())
    started = time.monotonic()
    response = api.client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert response.status_code == 201, response.text
    assert response.json()["warnings"] == []  # the worker serves the example's queue
    job = api.wait(response.json()["id"], cpu_worker)
    assert job["status"] == "succeeded", job["error"]
    # The first run also builds the tiny model: still well under a minute on 2 cores.
    assert time.monotonic() - started < 60
