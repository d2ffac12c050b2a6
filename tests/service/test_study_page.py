"""The dashboard's study page: one chart per metric with every arm's curve and its CI band
across seeds, then one per periodic eval score, above the results tables; another
principal gets a 404."""

import re

from store.models import Metric
from store.tokens import create_token
from tests.conftest import bearer
from tests.service.test_studies_api import study_body


def test_the_study_page_overlays_the_arms_with_ci_bands(client, tokens, session):
    study = client.post("/studies", json=study_body(), headers=bearer(tokens["submit"])).json()
    for i, member in enumerate(m for m in study["members"] if m["role"] == "train"):
        for step in (1, 2, 3):
            values = {"reward/mean": 0.1 * step + 0.01 * i, "weight/max": 2.0 + i}
            if step in (1, 3):  # a periodic eval reports at its steps only
                values |= {"eval/gsm8k_mini/avg@2": 0.25 * i, "eval/gsm8k_mini/pass@2": 0.5}
            session.add(Metric(job_id=member["job_id"], step=step, values=values))
    session.commit()
    page = client.get(f"/ui/studies/{study['id']}", headers=bearer(tokens["read"])).text
    charts = re.findall(r'<svg class="chart" data-title="([^"]+)"', page)
    assert charts == [
        "reward/mean",
        "weight/max",
        "eval/gsm8k_mini/avg@2",
        "eval/gsm8k_mini/pass@2",
    ]
    reward = page[page.index('data-title="reward/mean"') : page.index('data-title="weight/max"')]
    assert re.findall(r'<polyline class="series" data-name="(\w+)"', reward) == ["dgpo", "grpo"]
    assert re.findall(r'<polygon class="band" data-name="(\w+)"', reward) == ["dgpo", "grpo"]
    scores = page[page.index('id="eval-charts"') : page.index('id="evals"')]
    assert re.findall(r'<polygon class="band" data-name="(\w+)"', scores) == ["dgpo", "grpo"] * 2
    assert page.index('id="charts"') < page.index('id="eval-charts"') < page.index('id="evals"')
    assert page.index('id="evals"') < page.index('id="verdicts"')
    assert "simultaneous 95 % CI (Bonferroni)" in page
    other = bearer(create_token(session, "eve", "read", "team-eve"))
    assert client.get(f"/ui/studies/{study['id']}", headers=other).status_code == 404


def test_a_member_jobs_page_links_its_study(client, tokens):
    study = client.post("/studies", json=study_body(), headers=bearer(tokens["submit"])).json()
    member = study["members"][0]
    page = client.get(f"/ui/jobs/{member['job_id']}", headers=bearer(tokens["read"])).text
    assert f'href="/ui/studies/{study["id"]}"' in page and "arm dgpo, seed 1" in page
