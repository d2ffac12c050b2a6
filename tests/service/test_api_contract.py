"""What clients can rely on beyond the happy path: documented auth errors, one 422 shape
for validation and domain errors alike, and a dashboard no other site can frame."""

import pytest

from tests.conftest import bearer


def test_openapi_documents_401_403_and_one_422_shape(client):
    schema = client.get("/openapi.json").json()
    operations = [
        (method, path, op) for path, ops in schema["paths"].items() for method, op in ops.items()
    ]
    secured = [(m, p, op) for m, p, op in operations if op.get("security")]
    assert len(secured) >= 19
    for method, path, op in secured:
        assert {"401", "403"} <= set(op["responses"]), (method, path)
    for method, path, op in operations:
        if "422" in op["responses"]:
            content = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/HTTPValidationError"}, (method, path)


def test_openapi_documents_400_and_413_on_every_body_route(client):
    """The body guard answers these before any route (schemathesis found them undocumented)."""
    schema = client.get("/openapi.json").json()
    with_body = [
        (method, path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if "requestBody" in op
    ]
    assert len(with_body) >= 4
    for method, path, op in with_body:
        assert {"400", "413"} <= set(op["responses"]), (method, path)


def test_domain_422s_have_the_shape_of_validation_422s(client, tokens):
    h = bearer(tokens["read"])
    validation = client.get("/jobs", params={"limit": 0}, headers=h)
    domain = [
        (client.get("/jobs", params={"cursor": "garbage!"}, headers=h), ["query", "cursor"]),
        (client.get("/jobs", params={"metadata": "novalue"}, headers=h), ["query", "metadata"]),
    ]
    (expected,) = validation.json()["detail"]
    for response, loc in domain:
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert {"loc", "msg", "type"} <= set(error) and set(error) <= set(expected)
        assert error["loc"] == loc and error["msg"]


def test_dashboard_pages_forbid_framing_and_scripts(client, tokens):
    page = client.get("/ui", headers=bearer(tokens["read"]))
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert "script-src" not in policy  # no script may run at all (default-src 'none')


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("OPTIONS", "/jobs", {"GET", "POST"}),
        ("DELETE", "/jobs", {"GET", "POST"}),
        ("OPTIONS", "/schedules/abc", {"GET", "PATCH", "DELETE"}),
        ("PUT", "/healthz", {"GET"}),
    ],
)
def test_a_method_a_route_lacks_is_405_with_every_method_it_has_in_allow(
    client, method, url, allowed
):
    """RFC 9110 15.5.6: a 405 lists the resource's methods; it named only the first route's
    (`POST` for `/jobs`, which GET serves too; issue 24, 9)."""
    r = client.request(method, url)
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) - {"HEAD"} == allowed, r.headers
