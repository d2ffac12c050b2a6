"""The FastAPI application (`uvicorn service.app:app`). Importing it never imports torch."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


@asynccontextmanager
async def _collect_only_what_requests_make(_: FastAPI) -> AsyncIterator[None]:
    """Move what start-up built (modules, models, routes: ~170k objects, all living as
    long as the process) out of the garbage collector's reach while the app serves.

    Objects of requests parked on a group commit live long enough to reach the oldest
    generation, so full collections are frequent under load; each walked every import-time
    object (~75 ms), about a quarter of `POST /jobs`' CPU in `bench/api.py`. Shutdown
    gives them back, for processes that go on (tests, the embedded mode).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def create_app() -> FastAPI:
    settings = get_settings()
    # /docs and /redoc load Swagger UI / ReDoc from files this package ships (served
    # under /static-offline-docs), not from a CDN: they work on machines with no internet.
    app = FastAPIOffline(
        title="dgpo",
        version="0.1.0",
        description="Submit DGPO train and eval jobs; read their progress, metrics and results.",
        lifespan=_collect_only_what_requests_make,
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
