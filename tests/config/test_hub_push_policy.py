"""`checkpoint.push_to_hub` writes with the worker's Hub token, so the API accepts it only
for namespaces the operator lists (`DGPO_HUB_PUSH_NAMESPACES`)."""

from collections.abc import Iterator

import pytest

from config.settings import get_settings
from tests.conftest import bearer
from tests.service.helpers import train_body


@pytest.fixture
def operator_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_push_only_to_the_operators_namespaces(client, tokens, operator_settings) -> None:  # type: ignore[no-untyped-def]
    body = train_body(checkpoint={"push_to_hub": {"repo_id": "my-org/dgpo-run"}})
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 422, r.text
    (entry,) = r.json()["detail"]
    assert entry["loc"] == ["body", "checkpoint", "push_to_hub", "repo_id"]
    assert "hub push namespaces []" in entry["msg"]
    operator_settings.setenv("DGPO_HUB_PUSH_NAMESPACES", '["my-org"]')
    get_settings.cache_clear()
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 201, r.text
    other = train_body(checkpoint={"push_to_hub": {"repo_id": "someone-else/model"}})
    r = client.post("/jobs", json=other, headers=bearer(tokens["submit"]))
    assert r.status_code == 422, r.text
