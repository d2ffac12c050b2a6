"""Domain errors and their HTTP status: bad input is a 4xx that says what to fix."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError

from service.lifecycle import IllegalTransition
from service.spec_policy import SpecRefused


class NotFound(Exception):
    """An unknown id (404)."""


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was already used with a different body (422)."""


class BadRequest(Exception):
    """A query parameter that parsed but makes no sense, e.g. a malformed cursor (422)."""


def _json(status: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


STATUS_OF: dict[type[Exception], int] = {
    NotFound: 404,
    IllegalTransition: 409,
    IdempotencyMismatch: 422,
    BadRequest: 422,
}
"""Domain exceptions whose message is the whole answer."""


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    return _json(STATUS_OF[type(exc)], str(exc))


def install(app: FastAPI) -> None:
    """Map domain exceptions to responses (never a 500 for bad input)."""
    for error in STATUS_OF:
        app.add_exception_handler(error, _domain_error)

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
