"""Property-based fuzz of the OpenAPI schema: whatever the input, never a 5xx."""

import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from tests.conftest import bearer

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())


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
