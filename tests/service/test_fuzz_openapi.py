"""Property-based fuzz of the OpenAPI schema: whatever the input, never a 5xx.

Schemathesis generates only what JSON Schema allows, so a second pass poisons its bodies
with what careless or hostile clients send anyway (issue 17): NaN, ±Infinity and lone
UTF-16 surrogates, in values and in keys, serialised by hand since `json=` refuses them.
"""

import json
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from service.app import create_app
from tests.conftest import bearer

app = create_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
POISON = [float("nan"), float("inf"), float("-inf"), "\ud800", "x\udfff"]


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_the_api_fail_with_5xx(case, tokens, redis_url):
    response = case.call(headers=bearer(tokens["admin"]))
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )


def _poison(value: Any, poison: Any) -> Any:
    """`value` with every number and string leaf (and every key, for a string poison)
    replaced by `poison`."""
    if isinstance(value, dict):
        key = (lambda k: poison) if isinstance(poison, str) else (lambda k: k)
        return {key(k): _poison(v, poison) for k, v in value.items()}
    if isinstance(value, list):
        return [_poison(v, poison) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    return poison


@schema.parametrize()
@schema.given(poison=st.sampled_from(POISON))
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_nan_infinity_and_surrogates_never_make_the_api_fail_with_5xx(
    case, poison, tokens, redis_url
):
    body = case.body if isinstance(case.body, dict | list) else {"value": 1}
    raw = json.dumps(_poison(body, poison), allow_nan=True)  # ASCII: surrogates as \uXXXX
    with TestClient(app) as client:
        response = client.request(
            case.method,
            case.formatted_path,
            params=case.query,
            content=raw.encode(),
            headers={**bearer(tokens["admin"]), "content-type": "application/json"},
        )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {raw[:200]} -> {response.status_code}: "
        f"{response.text[:500]}"
    )
