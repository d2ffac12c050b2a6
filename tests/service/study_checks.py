"""An independent recomputation of a study report from what the member jobs stored,
through the jobs API (metrics, eval scores, per-problem counts), with scipy and numpy:
not with the product's statistics module."""

from typing import Any

import numpy as np
import pytest
from scipy import stats

from service.study_report import OUTSIDE_W

Members = dict[tuple[str, int, str], dict[str, Any]]
"""(arm, seed, role) -> the member as `GET /studies/{id}` lists it."""


def t_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None, None
    if np.std(values) == 0:  # scipy answers nan for a zero-width interval
        return mean, mean, mean
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values by the textbook loop, in input order."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def assert_report_matches(
    client: Any,
    read: dict[str, str],
    report: dict[str, Any],
    by: Members,
    benchmarks: list[str],
    seeds: list[int],
    arms: tuple[str, str] = ("dgpo", "grpo"),
    alpha: float = 0.05,
) -> None:
    """Curves, eval scores and the paired comparison of `arms[1]` against `arms[0]`."""

    # Curves: each (arm, metric, step) is the t-interval of the seeds' stored values.
    metrics = {
        (arm, seed): {
            p["step"]: p["values"]
            for p in client.get(
                f"/jobs/{by[(arm, seed, 'train')]['job_id']}/metrics", headers=read
            ).json()["points"]
        }
        for arm in arms
        for seed in seeds
    }
    curves = {(p["arm"], p["metric"], p["step"]): p for p in report["curves"]}
    assert {m for _, m, _ in curves} >= {"reward/mean", "weight/max", "clip/hp_frac"}
    for (arm, name, step), point in curves.items():
        values = [metrics[(arm, s)][step][name] for s in seeds if step in metrics[(arm, s)]]
        mean, low, high = t_interval(values)
        assert point["n"] == len(values) == 2
        assert point["mean"] == pytest.approx(mean)
        assert point["ci_low"] == pytest.approx(low) and point["ci_high"] == pytest.approx(high)
    assert {a for a, _, _ in curves} == set(arms)
    # Each arm's largest W, over all tokens and outside the trust region, from the same steps.
    summary = {a["arm"]: a for a in report["arms"]}
    for arm in arms:
        for field, name in (("weight_max", "weight/max"), ("weight_outside_max", OUTSIDE_W)):
            stored = [v[name] for (a, _), steps in metrics.items() if a == arm
                      for v in steps.values() if name in v]  # fmt: skip
            assert summary[arm][field] == pytest.approx(max(stored))
    # Periodic evals' scores (train metrics eval/<benchmark>/<score>) are curves too.
    periodic = {
        (arm, name, step)
        for (arm, _), steps in metrics.items()
        for step, values in steps.items()
        for name in values
        if name.startswith("eval/")
    }
    assert periodic <= curves.keys()

    # Final evals: mean and t-interval of each seed's stored score.
    results = {
        (arm, seed): {
            r["benchmark"]: r
            for r in client.get(
                f"/jobs/{by[(arm, seed, 'eval')]['job_id']}/results", headers=read
            ).json()
        }
        for arm in arms
        for seed in seeds
    }
    scores = {(e["arm"], e["benchmark"], e["score"]): e for e in report["evals"]}
    assert {(a, b) for a, b, _ in scores} == {(a, b) for a in arms for b in benchmarks}
    for (arm, benchmark, score), row in scores.items():
        values = [results[(arm, s)][benchmark]["scores"][score] for s in seeds]
        mean, low, high = t_interval(values)
        assert row["mean"] == pytest.approx(mean)
        assert row["ci_low"] == pytest.approx(low) and row["ci_high"] == pytest.approx(high)

    # Paired comparisons: seeds pooled per problem, bootstrap over problems, Holm over all,
    # and Bonferroni's simultaneous intervals: each at 1 - alpha/m of the same resamples.
    expected = []
    for benchmark in benchmarks:
        acc = {}
        for arm in arms:
            counts: dict[str, list[int]] = {}
            for seed in seeds:
                for p in results[(arm, seed)][benchmark]["per_problem"]["problems"]:
                    c = counts.setdefault(str(p["problem_id"]), [0, 0])
                    c[0] += p["num_correct"]
                    c[1] += p["num_samples"]
            acc[arm] = {pid: correct / n for pid, (correct, n) in counts.items()}
        shared = sorted(acc[arms[0]].keys() & acc[arms[1]].keys())
        diff = np.array([acc[arms[1]][p] - acc[arms[0]][p] for p in shared])
        idx = np.random.default_rng(0).integers(0, len(diff), size=(10_000, len(diff)))
        means = diff[idx].mean(axis=1)
        p_value = min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean()))
        low, high = np.quantile(means, [0.025, 0.975])
        tail = alpha / len(benchmarks) / 2  # m = len(benchmarks) comparisons, one arm
        bonferroni = tuple(np.quantile(means, [tail, 1 - tail]))
        expected.append((benchmark, diff.mean(), low, high, p_value, len(shared), bonferroni))
    adjusted = holm([e[4] for e in expected])
    compared = {c["benchmark"]: c for c in report["comparisons"]}
    assert set(compared) == set(benchmarks) and all(c["arm"] == arms[1] for c in compared.values())
    for (benchmark, difference, low, high, p_value, n, bonferroni), p_adjusted in zip(
        expected, adjusted, strict=True
    ):
        c = compared[benchmark]
        assert c["seeds"] == seeds and c["num_problems"] == n
        assert c["difference"] == pytest.approx(difference)
        assert (c["ci_low"], c["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert c["p_value"] == pytest.approx(p_value)
        assert c["p_adjusted"] == pytest.approx(p_adjusted)
        want = "no detectable difference"
        if c["p_adjusted"] <= alpha:
            want = "better" if difference > 0 else "worse"
        assert c["verdict"] == want
        assert (c["ci_low_adjusted"], c["ci_high_adjusted"]) == pytest.approx(bonferroni)
        assert c["confidence_adjusted"] == pytest.approx(1 - alpha / len(benchmarks))
        assert c["ci_low_adjusted"] <= c["ci_low"] and c["ci_high"] <= c["ci_high_adjusted"]
        if c["ci_low_adjusted"] > 0 or c["ci_high_adjusted"] < 0:  # implies Holm's verdict
            assert c["verdict"] == ("better" if c["ci_low_adjusted"] > 0 else "worse")
