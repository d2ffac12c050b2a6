"""`GET /studies/{id}/report` on planted member data (seconds, no worker): the numbers
(curves, periodic eval scores, Bonferroni intervals included) equal an independent
recomputation, a clear gain is `better` after Holm, and an arm whose jobs failed or were
cancelled is reported as not compared, with why."""

import csv
import io
import random

import pytest
from sqlalchemy import select

from service.study_report import OUTSIDE_W
from store import studies
from store.lifecycle import JobError, transition
from store.models import Job, JobStatus, Metric
from tests.conftest import bearer
from tests.evals.helpers import add_results, counts
from tests.service.study_checks import assert_report_matches
from tests.service.test_studies_api import study_body

BENCHMARKS = ["gsm8k_mini", "amc23"]
SEEDS = [1, 2]
PERIODIC = ("eval/gsm8k_mini/avg@4", "eval/gsm8k_mini/pass@4")
"""What a periodic eval at step 2 (`eval_every_steps: 2`) reports."""


def _finish(session, job_id: str, status: JobStatus = JobStatus.SUCCEEDED, **kw) -> None:  # type: ignore[no-untyped-def]
    job = session.get(Job, job_id)
    transition(session, job, JobStatus.RUNNING)
    transition(session, job, status, **kw)
    session.commit()


def test_the_report_matches_the_stored_data_and_names_what_was_not_compared(
    client, tokens, session
):
    arms = {"dgpo": {}, "grpo": {"algorithm.policy_loss.name": "grpo"},
            "broken": {"algorithm.policy_loss.name": "cispo"}}  # fmt: skip
    body = study_body(arms=arms, eval={"benchmarks": BENCHMARKS, "k": 4}, eval_every_steps=2)
    study = client.post("/studies", json=body, headers=bearer(tokens["submit"])).json()
    train = {(m["arm"], m["seed"]): m["job_id"] for m in study["members"] if m["role"] == "train"}
    rng = random.Random(0)
    for (arm, _), job_id in train.items():
        if arm == "broken":
            continue
        for step in (1, 2, 3):
            values = {name: rng.random() for name in
                      ("reward/mean", "weight/max", OUTSIDE_W, "clip/hp_frac",
                       "clip/ln_frac")}  # fmt: skip
            if step == 2:
                values |= {name: rng.randint(0, 8) / 8 for name in PERIODIC}
            session.add(Metric(job_id=job_id, step=step, values=values))
        _finish(session, job_id)
        evaluation = studies.submit_eval(session, job_id)
        assert evaluation is not None and evaluation.metadata_["arm"] == arm
        assert studies.submit_eval(session, job_id).id == evaluation.id  # once per member
        _finish(session, evaluation.id)
        # grpo gets most gsm8k_mini problems right where dgpo gets few; amc23 is a coin.
        gain = [4 if arm == "grpo" else rng.choice([0, 1]) for _ in range(30)]
        add_results(session, evaluation.id, "gsm8k_mini", counts(gain))
        add_results(session, evaluation.id, "amc23", counts([rng.randint(0, 4) for _ in range(30)]))
    _finish(session, train[("broken", 1)], JobStatus.FAILED,
            error=JobError("data_missing", "dataset gone", 1))  # fmt: skip
    client.post(f"/jobs/{train[('broken', 2)]}/cancel", headers=bearer(tokens["submit"]))

    read = bearer(tokens["read"])
    shown = client.get(f"/studies/{study['id']}", headers=read).json()
    assert shown["status"] == "incomplete" and shown["incomplete_arms"] == ["broken"]
    by = {(m["arm"], m["seed"], m["role"]): m for m in shown["members"]}
    report = client.get(f"/studies/{study['id']}/report", headers=read).json()
    assert_report_matches(client, read, report, by, BENCHMARKS, SEEDS)
    verdicts = {c["benchmark"]: c["verdict"] for c in report["comparisons"]}
    assert verdicts["gsm8k_mini"] == "better"
    assert "Holm" in report["correction"] and "Bonferroni" in report["correction"]
    periodic = {(p["arm"], p["metric"], p["step"]) for p in report["curves"]
                if p["metric"].startswith("eval/")}  # fmt: skip
    assert periodic == {(arm, name, 2) for arm in ("dgpo", "grpo") for name in PERIODIC}

    table = client.get(f"/studies/{study['id']}/report?format=csv", headers=read).text
    rows = list(csv.DictReader(io.StringIO(table)))
    assert {(r["arm"], r["name"], r["step"]) for r in rows if r["name"] in PERIODIC} == {
        (arm, name, "2") for arm, name, _ in periodic
    }
    for c in report["comparisons"]:
        row = next(r for r in rows if r["section"] == "comparison" and r["name"] == c["benchmark"])
        assert float(row["ci_low_adjusted"]) == pytest.approx(c["ci_low_adjusted"])
        assert float(row["ci_high_adjusted"]) == pytest.approx(c["ci_high_adjusted"])
    gaps = {g["benchmark"]: g["reason"] for g in report["not_compared"] if g["arm"] == "broken"}
    assert set(gaps) == set(BENCHMARKS)
    for reason in gaps.values():
        assert reason.startswith("not compared")
        assert "seed 1: train job" in reason and "failed (data_missing)" in reason
        assert "seed 2: train job" in reason and "cancelled" in reason
    summary = {a["arm"]: a for a in report["arms"]}
    assert summary["broken"]["seeds_trained"] == [] and summary["broken"]["weight_max"] is None
    assert summary["grpo"]["seeds_evaluated"] == SEEDS
    outside = [
        sum(v for k, v in p.items() if k.startswith("clip/"))
        for job in (train[("grpo", 1)], train[("grpo", 2)])
        for p in session.scalars(select(Metric.values).where(Metric.job_id == job))
    ]
    assert summary["grpo"]["outside_trust_region"] == pytest.approx(sum(outside) / len(outside))
