"""An eval job through a real worker scores a custom JSONL eval set with its own prompt."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import EvalResult
from tests.conftest import operator_dir
from tests.trainer.evaluation.test_eval_sets import write_set
from tests.workers.conftest import Api, WorkerProcess


def test_an_eval_job_scores_a_custom_set_with_the_prompt_of_its_spec(
    echo_model_dir: str,
    cpu_worker: WorkerProcess,
    api: Api,
    session: Session,
) -> None:
    """The echo model answers the prompt's last token: 7 only if the spec's prompt reached
    the engine (the default prompt ends in `}` and scores 0,
    tests/trainer/evaluation/test_eval_sets.py)."""
    eval_set = write_set(operator_dir("datasets") / "sevens.jsonl")
    body = {
        "kind": "eval",
        "model": {"path": echo_model_dir},
        "benchmarks": [{"name": "sevens", "path": eval_set}, "arith-test"],
        "prompt": {"instruction": "7", "use_chat_template": False},
        "k": 2,
        "max_problems": 2,
        "max_tokens": 1,
    }
    job = api.wait(api.submit(body), cpu_worker)
    assert job["status"] == "succeeded", job["error"]
    rows = session.scalars(select(EvalResult).where(EvalResult.job_id == job["id"])).all()
    scores = {row.benchmark: row.scores["avg@2"] for row in rows}
    assert scores == {"sevens": 1.0, "arith-test": 0.0}
