"""Domain errors and their HTTP status: bad input is a 4xx that says what to fix."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError

from service.lifecycle import IllegalTransition


class NotFound(Exception):
    """An unknown id (404)."""


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was already used with a different body (422)."""


class BadRequest(Exception):
    """A query parameter that parsed but makes no sense, e.g. a malformed cursor (422)."""


def _json(status: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def install(app: FastAPI) -> None:
    """Map domain exceptions to responses (never a 500 for bad input)."""

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(IdempotencyMismatch)
    async def _mismatch(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        return _json(422, str(exc))

    @app.exception_handler(BadRequest)
    async def _bad(_: Request, exc: BadRequest) -> JSONResponse:
        return _json(422, str(exc))

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
