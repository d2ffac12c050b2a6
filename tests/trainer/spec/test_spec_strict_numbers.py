"""A boolean is never a number in a spec (issue 24, 9): `lr: true` was 1.0.

Which fields take numbers is read from the published JSON schema, not from the code
under test, so a field added later is covered too. Strings that spell numbers stay
accepted: YAML reads `lr: 1e-5` (no dot) as the string "1e-5".
"""

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from trainer.spec import EvalJobRequest, TrainJobRequest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NUMBER = {"integer", "number"}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _members(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(schema, node)
    union = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
    if union:
        return [m for sub in union for m in _members(schema, sub)]
    return [node]


def _types(members: list[dict[str, Any]]) -> set[str]:
    return {m.get("type") for m in members if "type" in m} | (
        {"boolean"} if any(m == {} for m in members) else set()  # Any takes booleans
    )


def number_fields(schema: dict[str, Any], node: dict[str, Any], prefix=()) -> Iterator[tuple]:
    """(path, value to put there): `True` for a number field, `[True]` for a list of numbers,
    `{"x": True}` for a map of numbers; then the fields of nested sections."""
    for name, prop in _resolve(schema, node).get("properties", {}).items():
        path, members = (*prefix, name), _members(schema, prop)
        types = _types(members)
        if types & NUMBER and "boolean" not in types:
            yield path, True
        for member in members:
            items = _types(_members(schema, member.get("items", {"type": "null"})))
            if member.get("type") == "array" and items & NUMBER and "boolean" not in items:
                yield path, [True]
            values = member.get("additionalProperties")
            if isinstance(values, dict):
                kinds = _types(_members(schema, values))
                if kinds & NUMBER and "boolean" not in kinds:
                    yield path, {"x": True}
            if "properties" in member:
                yield from number_fields(schema, member, path)


def _put(body: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node = body
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return body


MODELS = ((TrainJobRequest, "train-gpu-vllm.yaml"), (EvalJobRequest, "eval-gpu-vllm.yaml"))


def _cases() -> Iterator[Any]:
    for model, example in MODELS:
        schema = model.model_json_schema()
        for path, value in number_fields(schema, schema):
            yield pytest.param(model, example, path, value, id=f"{example}:{'.'.join(path)}")


CASES = list(_cases())


def test_the_schema_walk_finds_the_number_fields_it_should() -> None:
    found = {(c.values[1], ".".join(c.values[2])) for c in CASES}
    assert {("train-gpu-vllm.yaml", "optim.lr"), ("train-gpu-vllm.yaml", "priority"),
            ("eval-gpu-vllm.yaml", "k"), ("eval-gpu-vllm.yaml", "pass_k")} <= found  # fmt: skip
    assert len(CASES) > 40


@pytest.mark.parametrize(("model", "example", "path", "value"), CASES)
def test_a_boolean_where_a_number_goes_is_refused_naming_the_field(
    model: type[BaseModel], example: str, path: tuple, value: Any
) -> None:
    body = _put(yaml.safe_load((EXAMPLES / example).read_text()), path, value)
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    locs = [err["loc"] for err in refused.value.errors()]
    assert any(loc[: len(path)] == path for loc in locs), locs


def test_numbers_spelled_as_strings_still_validate() -> None:
    body = yaml.safe_load((EXAMPLES / "train-gpu-vllm.yaml").read_text())
    body["optim"]["lr"] = yaml.safe_load("lr: 1e-5")["lr"]  # YAML 1.1: a string
    assert TrainJobRequest.model_validate(body).optim.lr == 1e-5
