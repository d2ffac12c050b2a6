"""End to end on CPU: a study of two real arms (DGPO, GRPO) x two seeds and one arm that
fails on the worker, through a real `dgpo worker`, the tiny model and a
benchmark (Holm over several comparisons: tests/service/test_study_report.py). The
report's numbers are recomputed here from what the jobs stored (metrics, eval scores and
per-problem counts) with scipy and numpy, not with the product's statistics module."""

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_HOME, bearer, operator_dir
from tests.service.study_checks import assert_report_matches
from tests.workers.conftest import WorkerProcess, wait_for

BENCHMARKS = ["gsm8k_mini"]
SEEDS = [1, 2]


@pytest.fixture
def worker(clean_db: str, redis_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess("studies", "cpu", tmp_path / "worker.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def study_body(model: str, data: str) -> dict:
    return {
        "name": "tiny losses",
        "base": {
            "model": {"path": model},
            "dataset": {"path": data},
            "prompt": {"instruction": "", "use_chat_template": False},
            "algorithm": {"group_size": 2, "reward": "contains"},
            "rollout": {"max_prompt_tokens": 16, "max_response_tokens": 4, "batch_size": 4},
            # two mini-batches per step: off-policy, so the losses may differ
            "optim": {"prompts_per_step": 2, "mini_batch_prompts": 1, "micro_batch_size": 2},
            "total_steps": 2,
            "checkpoint": {"every_steps": 0},
            "resources": {"gpus": 0},
        },
        "arms": {
            "dgpo": {},
            "grpo": {"algorithm.policy_loss.name": "grpo"},
            "broken": {"dataset": {"path": f"{TEST_HOME}/datasets/missing.jsonl"}},
        },
        "baseline": "dgpo",
        "seeds": SEEDS,
        "eval": {"benchmarks": BENCHMARKS, "k": 2, "max_tokens": 4, "max_problems": 3,
                 "pass_k": [1, 2]},
        "eval_every_steps": 2,  # a periodic eval at the last step: curves of its scores
    }  # fmt: skip


@pytest.mark.timeout(1500)  # ~1 min on idle cores; eight trainer children on a loaded host
def test_a_study_runs_every_member_and_its_report_matches_the_stored_data(client, tokens, worker):
    from trainer.data.tiny import build_tiny_model, write_toy_dataset

    model = str(build_tiny_model(operator_dir("models")))
    data = str(write_toy_dataset(operator_dir("datasets") / "toy.jsonl", num_prompts=8))
    submit, read = bearer(tokens["submit"]), bearer(tokens["read"])
    r = client.post("/studies", json=study_body(model, data), headers=submit)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    def finished() -> dict | None:
        study = client.get(f"/studies/{sid}", headers=read).json()
        return study if study["status"] in ("succeeded", "incomplete") else None

    study = wait_for(finished, "the study to finish", timeout=1400)
    by = {(m["arm"], m["seed"], m["role"]): m for m in study["members"]}
    for arm in ("dgpo", "grpo"):
        for seed in SEEDS:
            for role in ("train", "eval"):
                assert by[(arm, seed, role)]["status"] == "succeeded", worker.output()
    assert {by[("broken", s, "train")]["error_code"] for s in SEEDS} == {"data_missing"}
    assert {by[("broken", s, "eval")]["status"] for s in SEEDS} == {"skipped"}
    assert study["status"] == "incomplete" and study["incomplete_arms"] == ["broken"]

    report = client.get(f"/studies/{sid}/report", headers=read).json()
    assert_report_matches(client, read, report, by, BENCHMARKS, SEEDS)
    periodic = {(p["arm"], p["metric"], p["step"]) for p in report["curves"]
                if p["metric"].startswith("eval/")}  # fmt: skip
    assert periodic == {(arm, f"eval/gsm8k_mini/{score}", 2) for arm in ("dgpo", "grpo")
                        for score in ("avg@2", "pass@1", "pass@2")}  # fmt: skip

    # The failed arm is reported as not compared, naming why; compute is accounted.
    gaps = {(g["arm"], g["benchmark"]): g["reason"] for g in report["not_compared"]}
    assert set(gaps) == {("broken", b) for b in BENCHMARKS}
    assert all("failed (data_missing)" in reason for reason in gaps.values())
    arms = {a["arm"]: a for a in report["arms"]}
    assert arms["broken"]["seeds_trained"] == [] and arms["dgpo"]["seeds_evaluated"] == SEEDS
    assert arms["dgpo"]["wall_seconds"] > 0 and arms["dgpo"]["attempts"] == 4
    assert arms["grpo"]["outside_trust_region"] is not None

    compared = {c["benchmark"]: c for c in report["comparisons"]}
    download = client.get(f"/studies/{sid}/report?format=csv", headers=read)
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    verdicts = {r["name"]: r["verdict"] for r in rows if r["section"] == "comparison"}
    assert verdicts == {b: compared[b]["verdict"] for b in BENCHMARKS}
