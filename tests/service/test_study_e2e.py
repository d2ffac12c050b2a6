"""End to end on CPU: a study of two real arms (DGPO, GRPO) x two seeds and one arm that
fails on the worker, through a real `dgpo worker`, the tiny model and two benchmarks. The
report's numbers are recomputed here from what the jobs stored (metrics, eval scores and
per-problem counts) with scipy and numpy, not with the product's statistics module."""

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.conftest import TEST_HOME, bearer, operator_dir
from tests.workers.conftest import WorkerProcess, wait_for

BENCHMARKS = ["gsm8k_mini", "amc23"]
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
    }  # fmt: skip


def t_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None, None
    if np.std(values) == 0:  # scipy answers nan for a zero-width interval
        return mean, mean, mean
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)


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

    study = wait_for(finished, "the study to finish", timeout=600)
    by = {(m["arm"], m["seed"], m["role"]): m for m in study["members"]}
    for arm in ("dgpo", "grpo"):
        for seed in SEEDS:
            for role in ("train", "eval"):
                assert by[(arm, seed, role)]["status"] == "succeeded", worker.output()
    assert {by[("broken", s, "train")]["error_code"] for s in SEEDS} == {"data_missing"}
    assert {by[("broken", s, "eval")]["status"] for s in SEEDS} == {"skipped"}
    assert study["status"] == "incomplete" and study["incomplete_arms"] == ["broken"]

    report = client.get(f"/studies/{sid}/report", headers=read).json()

    # Curves: each (arm, metric, step) is the t-interval of the seeds' stored values.
    metrics = {
        (arm, seed): {
            p["step"]: p["values"]
            for p in client.get(
                f"/jobs/{by[(arm, seed, 'train')]['job_id']}/metrics", headers=read
            ).json()["points"]
        }
        for arm in ("dgpo", "grpo")
        for seed in SEEDS
    }
    curves = {(p["arm"], p["metric"], p["step"]): p for p in report["curves"]}
    assert {m for _, m, _ in curves} >= {"reward/mean", "weight/max", "clip/hp_frac"}
    for (arm, name, step), point in curves.items():
        values = [metrics[(arm, s)][step][name] for s in SEEDS if step in metrics[(arm, s)]]
        mean, low, high = t_interval(values)
        assert point["n"] == len(values) == 2
        assert point["mean"] == pytest.approx(mean)
        assert point["ci_low"] == pytest.approx(low) and point["ci_high"] == pytest.approx(high)
    assert {a for a, _, _ in curves} == {"dgpo", "grpo"}

    # Final evals: mean and t-interval of each seed's stored score.
    results = {
        (arm, seed): {
            r["benchmark"]: r
            for r in client.get(
                f"/jobs/{by[(arm, seed, 'eval')]['job_id']}/results", headers=read
            ).json()
        }
        for arm in ("dgpo", "grpo")
        for seed in SEEDS
    }
    scores = {(e["arm"], e["benchmark"], e["score"]): e for e in report["evals"]}
    assert {(a, b) for a, b, _ in scores} == {(a, b) for a in ("dgpo", "grpo") for b in BENCHMARKS}
    for (arm, benchmark, score), row in scores.items():
        values = [results[(arm, s)][benchmark]["scores"][score] for s in SEEDS]
        mean, low, high = t_interval(values)
        assert row["mean"] == pytest.approx(mean)
        assert row["ci_low"] == pytest.approx(low) and row["ci_high"] == pytest.approx(high)

    # Paired comparisons: seeds pooled per problem, bootstrap over problems, Holm over both.
    expected = []
    for benchmark in BENCHMARKS:
        acc = {}
        for arm in ("dgpo", "grpo"):
            counts: dict[str, list[int]] = {}
            for seed in SEEDS:
                for p in results[(arm, seed)][benchmark]["per_problem"]["problems"]:
                    c = counts.setdefault(str(p["problem_id"]), [0, 0])
                    c[0] += p["num_correct"]
                    c[1] += p["num_samples"]
            acc[arm] = {pid: correct / n for pid, (correct, n) in counts.items()}
        shared = sorted(acc["dgpo"].keys() & acc["grpo"].keys())
        diff = np.array([acc["grpo"][p] - acc["dgpo"][p] for p in shared])
        idx = np.random.default_rng(0).integers(0, len(diff), size=(10_000, len(diff)))
        means = diff[idx].mean(axis=1)
        p_value = min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean()))
        low, high = np.quantile(means, [0.025, 0.975])
        expected.append((benchmark, diff.mean(), low, high, p_value))
    ps = sorted(e[4] for e in expected)
    holm = [min(1.0, max(2 * ps[0], ps[1] if i else 0)) if i else min(1.0, 2 * ps[0])
            for i in range(2)]  # fmt: skip
    compared = {c["benchmark"]: c for c in report["comparisons"]}
    assert set(compared) == set(BENCHMARKS) and all(c["arm"] == "grpo" for c in compared.values())
    for benchmark, difference, low, high, p_value in expected:
        c = compared[benchmark]
        assert c["seeds"] == SEEDS and c["num_problems"] == 3
        assert c["difference"] == pytest.approx(difference)
        assert (c["ci_low"], c["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert c["p_value"] == pytest.approx(p_value)
        assert c["p_adjusted"] == pytest.approx(holm[ps.index(p_value)])
        want = "no detectable difference"
        if c["p_adjusted"] <= 0.05:
            want = "better" if difference > 0 else "worse"
        assert c["verdict"] == want

    # The failed arm is reported as not compared, naming why; compute is accounted.
    (skipped,) = report["not_compared"]
    assert skipped["arm"] == "broken" and "failed (data_missing)" in skipped["reason"]
    arms = {a["arm"]: a for a in report["arms"]}
    assert arms["broken"]["seeds_trained"] == [] and arms["dgpo"]["seeds_evaluated"] == SEEDS
    assert arms["dgpo"]["wall_seconds"] > 0 and arms["dgpo"]["attempts"] == 4
    assert arms["grpo"]["outside_trust_region"] is not None

    download = client.get(f"/studies/{sid}/report?format=csv", headers=read)
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    verdicts = {r["name"]: r["verdict"] for r in rows if r["section"] == "comparison"}
    assert verdicts == {b: compared[b]["verdict"] for b in BENCHMARKS}
