"""Specs that can only fail are refused at submit (422 naming the field): a local model
directory that is missing or has no `config.json`, a response longer than the model's own
context, and the vLLM engine where vLLM is not installed. The embedded API shares the
worker's disk and Python, so it checks them; the worker checks again before it loads
anything, whatever API took the job."""

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import get_settings
from config.spec_policy import SpecRefused, check_on_worker
from tests.conftest import bearer
from tests.service.helpers import eval_body, train_body
from trainer.spec import EvalSpec, TrainSpec


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("DGPO_EMBEDDED", "1")
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def model_dir(name: str, config: dict[str, object] | None) -> str:
    """A directory under the default data root `$DGPO_HOME/models`, with `config` as its
    config.json (None: none)."""
    path = Path(os.environ["DGPO_HOME"]) / "models" / name
    path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    return str(path)


def refused(client, tokens, body: dict[str, object]) -> dict[str, object]:  # type: ignore[no-untyped-def]
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 422, r.text
    (entry,) = r.json()["detail"]
    return entry


def test_missing_model_directory_is_refused_naming_the_field(client, tokens, embedded) -> None:  # type: ignore[no-untyped-def]
    missing = str(Path(os.environ["DGPO_HOME"]) / "models" / "no-such-model")
    entry = refused(client, tokens, train_body(model={"path": missing}))
    assert entry["loc"] == ["body", "model", "path"]
    assert entry["msg"] == f"no model directory at {missing}"
    entry = refused(client, tokens, eval_body(model={"path": missing}))
    assert entry["loc"] == ["body", "model", "path"]
    body = train_body(model={"path": missing})
    spec = TrainSpec.model_validate({k: v for k, v in body.items() if k != "kind"})
    with pytest.raises(SpecRefused, match=r"^model\.path: no model directory at "):
        check_on_worker(spec, get_settings())


def test_model_directory_without_config_json_is_refused(client, tokens, embedded) -> None:  # type: ignore[no-untyped-def]
    bare = model_dir("bare", None)
    body = train_body(algorithm={"reference_model": bare})
    entry = refused(client, tokens, body)
    assert entry["loc"] == ["body", "algorithm", "reference_model"]
    assert entry["msg"] == (
        f"{bare} has no config.json: not a model directory in Hugging Face format"
    )


def test_response_beyond_the_models_own_context_is_refused(client, tokens, embedded) -> None:  # type: ignore[no-untyped-def]
    path = model_dir("short", {"model_type": "qwen2", "max_position_embeddings": 1024})
    body = train_body(model={"path": path}, rollout={"max_response_tokens": 5000})
    entry = refused(client, tokens, body)
    assert entry["loc"] == ["body", "rollout", "max_response_tokens"]
    assert entry["msg"] == (
        "rollout.max_prompt_tokens + rollout.max_response_tokens (6024) exceeds the model's "
        "context of 1024 positions (max_position_embeddings in its config.json)"
    )
    entry = refused(client, tokens, eval_body(model={"path": path}, max_tokens=4096))
    assert entry["loc"] == ["body", "max_tokens"]
    # The spec's own max_context_length overrides the model's config, as documented.
    body["model"]["max_context_length"] = 8192  # type: ignore[index]
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 201, r.text


def test_builtin_tiny_models_context_is_known_before_it_is_built(client, tokens) -> None:  # type: ignore[no-untyped-def]
    body = train_body(model={"path": "tiny"}, rollout={"max_response_tokens": 5000})
    entry = refused(client, tokens, body)  # any API: the built-in's config is the package's
    assert entry["loc"] == ["body", "rollout", "max_response_tokens"]
    assert "context of 1024 positions" in entry["msg"]


def test_vllm_engine_without_vllm_is_refused_by_the_embedded_api(client, tokens, embedded) -> None:  # type: ignore[no-untyped-def]
    embedded.setitem(sys.modules, "vllm", None)  # how Python marks a module not importable
    hint = "needs the 'vllm' package, not installed: pip install 'dgpo[vllm]'"
    entry = refused(client, tokens, train_body(rollout={"engine": "vllm"}))
    assert (entry["loc"], entry["msg"]) == (["body", "rollout", "engine"], hint)
    entry = refused(client, tokens, eval_body(engine="vllm"))
    assert (entry["loc"], entry["msg"]) == (["body", "engine"], hint)
    spec = EvalSpec.model_validate(
        {k: v for k, v in eval_body(engine="vllm").items() if k != "kind"}
    )
    with pytest.raises(SpecRefused, match=r"^engine: needs the 'vllm' package"):
        check_on_worker(spec, get_settings())
