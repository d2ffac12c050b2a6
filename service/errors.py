"""Domain errors and their HTTP status: bad input is a 4xx that says what to fix."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.routing import Match

from config.spec_policy import SpecRefused
from service.request_guard import VALUES_MAX
from store.errors import NotFound, QuotaExceeded, Unprocessable
from store.lifecycle import IllegalTransition


def _json(status: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


STATUS_OF: dict[type[Exception], int] = {
    NotFound: 404,
    IllegalTransition: 409,
    QuotaExceeded: 429,
}
"""Domain exceptions whose message is the whole answer."""


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    return _json(STATUS_OF[type(exc)], str(exc))


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _method_not_allowed(request: Request, _: Exception) -> JSONResponse:
    """405 with `Allow` naming every method of the resource (RFC 9110 15.5.6): Starlette
    names only those of the first route whose path matched (`POST` for `/jobs`). Each
    method is asked of the router itself, so routers nested by `include_router` (newer
    FastAPI keeps them as one route each) answer for their own routes."""
    allowed = [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    response = _json(405, "Method Not Allowed")
    response.headers["Allow"] = ", ".join(allowed)
    return response


async def _unprocessable(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unprocessable)
    return JSONResponse(status_code=422, content={"detail": exc.as_detail()})


AUTH_ERRORS = {
    "401": "missing, invalid or revoked bearer token",
    "403": "the token's scope is too low for this route",
}
BODY_ERRORS = {
    "400": "the body is not JSON, or holds a lone UTF-16 surrogate",
    "413": f"the body is over DGPO_MAX_BODY_BYTES or holds over {VALUES_MAX:,} JSON values",
}
"""What `service.request_guard` and the JSON decoding answer before any route runs."""
_DETAIL_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


_VALIDATION_SCHEMA = {"$ref": "#/components/schemas/HTTPValidationError"}


def _document_errors(app: FastAPI) -> None:
    """Every operation that takes a bearer token documents its 401 and 403 answers, every
    one that takes a body its 400 and 413, and every 422 the body all 422s share
    (validation and `Unprocessable` alike)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                rejected = operation["responses"].get("422")
                if rejected is not None:
                    rejected["content"] = {"application/json": {"schema": _VALIDATION_SCHEMA}}
                codes = {**AUTH_ERRORS} if operation.get("security") else {}
                if "requestBody" in operation:
                    codes |= BODY_ERRORS
                for code, description in codes.items():
                    operation["responses"].setdefault(
                        code,
                        {
                            "description": description,
                            "content": {"application/json": {"schema": _DETAIL_SCHEMA}},
                        },
                    )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Map domain exceptions to responses (never a 500 for bad input)."""
    _document_errors(app)
    for error in STATUS_OF:
        app.add_exception_handler(error, _domain_error)
    app.add_exception_handler(Unprocessable, _unprocessable)
    app.add_exception_handler(405, _method_not_allowed)

    @app.exception_handler(SpecRefused)
    async def _refused(_: Request, exc: SpecRefused) -> JSONResponse:
        """Shaped like a validation error: one entry per field, naming it."""
        detail = [
            {"loc": ["body", *v.loc], "msg": v.msg, "type": "spec_policy"} for v in exc.violations
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        """The database refused a value (e.g. a NUL character Postgres cannot store)."""
        return _json(422, f"the database cannot store a value in this request: {exc.orig}")

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        """Database unreachable or out of connections: the client should retry later."""
        response = _json(503, f"database unavailable, retry later: {exc.orig}")
        response.headers["Retry-After"] = "1"
        return response
