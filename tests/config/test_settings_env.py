"""A `DGPO_` variable no part of the system reads is refused, with the name it was
probably meant to be: a typo'd setting must not silently do nothing."""

import pytest
from pydantic import ValidationError

from config.settings import Settings
from config.worker_settings import WorkerSettings


@pytest.mark.parametrize("settings", [Settings, WorkerSettings])
def test_a_misspelled_variable_is_refused_with_the_close_match(monkeypatch, settings):
    monkeypatch.setenv("DGPO_LEASE_SS", "5")
    with pytest.raises(ValidationError, match=r"DGPO_LEASE_SS.*did you mean DGPO_LEASE_S\b"):
        settings()


@pytest.mark.parametrize("settings", [Settings, WorkerSettings])
def test_the_other_classes_and_other_readers_variables_are_accepted(monkeypatch, settings):
    """One environment serves the API, the workers and the CLI (e.g. compose's)."""
    for name, value in [
        ("DGPO_LEASE_S", "90"),  # a worker setting
        ("DGPO_MAX_BODY_BYTES", "4096"),  # a service setting
        ("DGPO_TOKEN", "x"),  # the CLI's
        ("DGPO_BENCHMARK_DIR", "/data"),  # the trainer's
        ("DGPO_LOG_LEVEL", "DEBUG"),
    ]:
        monkeypatch.setenv(name, value)
    settings()


def test_each_variable_read_elsewhere_is_read_somewhere():
    from config.env import READ_ELSEWHERE
    from tests.conftest import REPO_ROOT

    texts = [
        path.read_text()
        for pattern in ("**/*.py", "docker-compose.yml")
        for path in REPO_ROOT.glob(pattern)
        if path.name != "env.py" and ".venv" not in path.parts
    ]
    unread = [name for name in READ_ELSEWHERE if not any(name in text for text in texts)]
    assert unread == []
