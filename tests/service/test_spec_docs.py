"""Every field a client can send in a job or schedule body is documented in `/openapi.json`.

The spec models' attribute docstrings become field descriptions
(`use_attribute_docstrings` on `SpecModel`); a new field without one fails here.
"""

from typing import Any

from trainer.spec import EvalJobRequest, SchedulePatch, ScheduleRequest, TrainJobRequest
from trainer.spec.study import StudyRequest

REQUEST_BODIES = [
    ("post", "/jobs"),
    ("post", "/schedules"),
    ("patch", "/schedules/{schedule_id}"),
    ("post", "/studies"),
]
STUDY_RESPONSES = [
    ("post", "/studies"),
    ("get", "/studies"),
    ("get", "/studies/{study_id}/report"),
]
"""Every field of the study resource is documented, answers included."""


def _refs(node: Any) -> list[str]:
    """Component names referenced anywhere inside `node`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = [ref.rsplit("/", 1)[1]] if isinstance(ref, str) else []
        return found + [name for value in node.values() for name in _refs(value)]
    if isinstance(node, list):
        return [name for value in node for name in _refs(value)]
    return []


def _reachable(openapi: dict[str, Any], roots: list[tuple[str, str]] = REQUEST_BODIES) -> set[str]:
    components = openapi["components"]["schemas"]
    parts = ("requestBody",) if roots is REQUEST_BODIES else ("responses",)
    todo = [
        name
        for method, path in roots
        for part in parts
        for name in _refs(openapi["paths"][path][method][part])
    ]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(components[name]))
    return seen


def test_every_request_spec_field_has_a_description(client):
    openapi = client.get("/openapi.json").json()
    reached = _reachable(openapi)
    nested = {
        name
        for model in (TrainJobRequest, EvalJobRequest, ScheduleRequest, SchedulePatch, StudyRequest)
        for name in [model.__name__, *model.model_json_schema().get("$defs", {})]
    }
    assert nested <= reached, f"walk missed {sorted(nested - reached)}"
    components = openapi["components"]["schemas"]
    missing = [
        f"{name}.{field}"
        for name in sorted(reached)
        for field, prop in components[name].get("properties", {}).items()
        if not prop.get("description", "").strip()
    ]
    assert not missing, f"undocumented spec fields: {missing}"


def test_job_api_conventions_are_documented(client):
    """The result pointer, event levels, checkpoint metrics and the event stream."""
    openapi = client.get("/openapi.json").json()
    components = openapi["components"]["schemas"]
    for model, field in [
        ("JobOut", "result"),
        ("ResultRef", "uri"),
        ("EventOut", "level"),
        ("CheckpointOut", "metrics"),
    ]:
        assert components[model]["properties"][field].get("description"), f"{model}.{field}"
    level = components["EventOut"]["properties"]["level"]
    assert level["enum"] == ["info", "warning", "error"]
    stream = openapi["paths"]["/jobs/{job_id}/events/stream"]["get"]["responses"]["200"]
    assert "text/event-stream" in stream["content"]


def test_every_study_answer_field_has_a_description(client):
    openapi = client.get("/openapi.json").json()
    components = openapi["components"]["schemas"]
    reached = _reachable(openapi, STUDY_RESPONSES) - {
        "ErrorOut",
        "HTTPValidationError",
        "ValidationError",
    }
    assert {"StudyOut", "StudyMemberOut", "StudyReport"} <= reached
    missing = [
        f"{name}.{field}"
        for name in sorted(reached)
        for field, prop in components[name].get("properties", {}).items()
        if not prop.get("description", "").strip()
    ]
    assert not missing, f"undocumented study fields: {missing}"
