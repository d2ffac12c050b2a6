"""The FastAPI application (`uvicorn service.app:app`). Importing it never imports torch."""

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from config.settings import get_settings
from service import errors, request_guard
from service.api.routes import evals, fleet, health, jobs, schedules, tokens
from service.fleet_metrics import FleetCollector
from service.intake import SubmitBatcher
from service.observability import LatencyMiddleware, Telemetry
from service.request_guard import BodyGuard
from service.ui import router as ui_router


def create_app() -> FastAPI:
    settings = get_settings()
    # /docs and /redoc load Swagger UI / ReDoc from files this package ships (served
    # under /static-offline-docs), not from a CDN: they work on machines with no internet.
    app = FastAPIOffline(
        title="dgpo",
        version="0.1.0",
        description="Submit DGPO train and eval jobs; read their progress, metrics and results.",
    )
    app.state.telemetry = Telemetry()
    app.state.submissions = SubmitBatcher(
        settings.submit_batches_in_flight,
        settings.submit_max_batch,
        app.state.telemetry.submit_batch_size,
    )
    app.add_middleware(LatencyMiddleware, telemetry=app.state.telemetry)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)  # outermost: first
    errors.install(app)
    request_guard.install(app)
    app.include_router(jobs.router)  # first: routes are matched in order, POST /jobs is hot
    app.include_router(health.router)
    app.include_router(fleet.router)
    app.include_router(evals.router)
    app.include_router(schedules.router)
    app.include_router(tokens.router)
    app.include_router(ui_router)
    app.state.telemetry.registry.register(FleetCollector())
    return app


app = create_app()
