"""Health checks (no token, for load balancers) and Prometheus metrics (read token)."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import ReadToken
from service.core.db import get_sessionmaker

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable"}})
def readyz() -> JSONResponse:
    """The database answers; a load balancer should route here only then."""
    try:
        with get_sessionmaker()() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return JSONResponse(
            {"status": "unavailable", "detail": f"database unreachable: {exc}"}, 503
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _: ReadToken) -> Response:
    """Prometheus exposition: jobs by status, queue depth, API latency histogram."""
    return Response(
        generate_latest(request.app.state.telemetry.registry), media_type=CONTENT_TYPE_LATEST
    )
