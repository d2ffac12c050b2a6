"""Job status names are spelled once (`store.models.JobStatus`): the client, which must not
import the store, keeps a copy this test holds equal; the dashboard's templates get them
from the code."""

import re

from dgpo import client
from service.ui.routes import templates
from store.models import TERMINAL_STATUSES, JobStatus, WorkerStatus
from tests.conftest import REPO_ROOT

TEMPLATES = REPO_ROOT / "service" / "ui" / "templates"


def test_the_clients_status_names_are_the_stores():
    assert list(client.JOB_STATUSES) == [s.value for s in JobStatus]
    assert {s.value for s in TERMINAL_STATUSES} == client.TERMINAL_STATUSES


def test_templates_spell_no_job_status():
    names = "|".join(s.value for s in JobStatus)
    for path in TEMPLATES.glob("*.html"):
        quoted = re.findall(rf"""["']({names})["']""", path.read_text())
        assert not quoted, f"{path.name} spells {quoted}: use job_statuses / live_statuses"
    assert list(templates.env.globals["job_statuses"]) == list(JobStatus)


def test_every_status_style_names_a_real_status():
    styled = re.findall(r"\.status\.(\w+)", (TEMPLATES / "base.html").read_text())
    assert styled and set(styled) <= {*JobStatus, *WorkerStatus}
