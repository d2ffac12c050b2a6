"""`dgpo jobs submit FILE KEY=VALUE` and `dgpo studies ...`: overrides are checked like the
file, a bad arm is refused locally naming it, and a study is submitted, shown, reported
(table, CSV, plot) and cancelled through the API."""

import csv
import io
import json
from pathlib import Path

import httpx
import yaml

from tests.conftest import bearer
from tests.ops.test_cli_readable import dgpo_api, dgpo_local
from tests.service.helpers import train_body
from tests.service.test_studies_api import study_body


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_unknown_or_invalid_override_is_refused_before_submitting(tmp_path: Path) -> None:
    spec = write(tmp_path, "train.yaml", train_body())
    out = dgpo_local("jobs", "submit", str(spec), "optim.lrr=1e-5")
    assert out.returncode == 2
    assert "override: unknown field 'optim.lrr'" in out.stdout
    out = dgpo_local("jobs", "submit", str(spec), "optim.lr=-1")
    assert out.returncode == 2 and "optim.lr: Input should be greater than 0" in out.stdout
    out = dgpo_local("jobs", "submit", str(spec), "optim.lr")
    assert out.returncode == 2 and "must look like KEY=VALUE" in out.stdout


def test_a_bad_arm_is_refused_locally_naming_the_arm(tmp_path: Path) -> None:
    body = study_body(arms={"dgpo": {}, "bad": {"optim.lrr": 1}})
    out = dgpo_local("studies", "submit", str(write(tmp_path, "study.yaml", body)))
    assert out.returncode == 2 and "arms.bad.optim.lrr: unknown field" in out.stdout
    ok = write(tmp_path, "ok.yaml", study_body())
    out = dgpo_local("studies", "submit", str(ok), "base.optim.mini_batch_prompts=3")
    assert out.returncode == 2 and "arms.dgpo.optim" in out.stdout


def test_overrides_reach_the_submitted_job(live_server, tokens, tmp_path: Path) -> None:
    spec = write(tmp_path, "train.yaml", train_body())
    out = dgpo_api(live_server, tokens["submit"], "jobs", "submit", str(spec), "optim.lr=1e-5",
                   "seed=3", "--json")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = json.loads(out.stdout)
    assert job["spec"]["optim"]["lr"] == 1e-5 and job["spec"]["seed"] == 3


def test_a_study_through_the_cli(live_server, tokens, tmp_path: Path) -> None:
    spec = write(tmp_path, "study.yaml", study_body())
    submit = dgpo_api(live_server, tokens["submit"], "studies", "submit", str(spec),
                      "seeds=[4, 5, 6]", "base.total_steps=5")  # fmt: skip
    assert submit.returncode == 0, submit.stdout + submit.stderr
    sid = submit.stdout.split()[0]
    study = httpx.get(f"{live_server}/studies/{sid}", headers=bearer(tokens["read"])).json()
    assert study["seeds"] == [4, 5, 6] and len(study["members"]) == 12
    assert study["spec"]["base"]["total_steps"] == 5
    shown = dgpo_api(live_server, tokens["read"], "studies", "show", sid)
    assert shown.returncode == 0 and "grpo" in shown.stdout and "pending" in shown.stdout
    assert max(map(len, shown.stdout.splitlines())) <= 100
    listed = dgpo_api(live_server, tokens["read"], "studies", "list")
    assert sid in listed.stdout
    plot = tmp_path / "curves.png"
    report = dgpo_api(live_server, tokens["read"], "studies", "report", sid, "--plot", str(plot))
    assert report.returncode == 0, report.stderr
    assert "not compared" in report.stdout and plot.stat().st_size > 0
    table = dgpo_api(live_server, tokens["read"], "studies", "report", sid, "--csv")
    header = next(csv.reader(io.StringIO(table.stdout)))
    assert header[:5] == ["section", "arm", "name", "step", "value"]
    cancelled = dgpo_api(live_server, tokens["submit"], "studies", "cancel", sid)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
