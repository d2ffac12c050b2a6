"""Health checks (no token, for load balancers) and Prometheus metrics (read token)."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import ReadToken
from store.db import schema_revision
from store.models import SCHEMA_REVISION

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable or not migrated"}})
def readyz() -> JSONResponse:
    """The database answers with the schema this code needs; route here only then."""
    try:
        revision = schema_revision()
    except SQLAlchemyError as exc:
        return _unavailable(f"database unreachable or never migrated: {exc}")
    if revision != SCHEMA_REVISION:
        return _unavailable(
            f"database schema is at revision {revision!r}, this code needs "
            f"{SCHEMA_REVISION!r}: run `alembic upgrade head`"
        )
    return JSONResponse({"status": "ready", "schema": revision})


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "detail": detail}, 503)


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _: ReadToken) -> Response:
    """Prometheus exposition: jobs by status, queue depth, API latency histogram."""
    return Response(
        generate_latest(request.app.state.telemetry.registry), media_type=CONTENT_TYPE_LATEST
    )
