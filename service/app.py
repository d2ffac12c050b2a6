"""The FastAPI application (`uvicorn service.app:app`). Importing it never imports torch."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from config.settings import get_settings
from service import access_log, errors, request_guard
from service.api.routes import evals, fleet, health, jobs, schedules, studies, tokens, usage
from service.fleet_metrics import FleetCollector
from service.intake import SubmitBatcher
from service.observability import LatencyMiddleware, Telemetry
from service.request_guard import BodyGuard
from service.ui import TokenNeeded, token_page
from service.ui import router as ui_router

YOUNG_GENERATION = 10_000
"""Tracked objects allocated (net) between young collections while serving; CPython's
default is 700."""


@asynccontextmanager
async def _collector_off_the_request_path(_: FastAPI) -> AsyncIterator[None]:
    """Keep the garbage collector's work off `POST /jobs` while the app serves.

    A submission parked on a group commit holds ~130 tracked objects for the whole
    commit. With CPython's thresholds a busy server ran a young collection every ~5
    requests, promoted what was parked, and so ran frequent full collections, each
    walking every object start-up built (~170k: modules, models, routes; ~75 ms). In
    `bench/api.py` that was a quarter of the CPU and most of the p99. So: start-up
    objects are frozen out of the collector's reach (they live as long as the process),
    and the young generation is collected after `YOUNG_GENERATION` objects. Shutdown
    restores both, for processes that go on (tests, the embedded mode).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def create_app() -> FastAPI:
    settings = get_settings()
    # /docs and /redoc load Swagger UI / ReDoc from files this package ships (served
    # under /static-offline-docs), not from a CDN: they work on machines with no internet.
    app = FastAPIOffline(
        title="dgpo",
        version="0.1.0",
        description="Submit DGPO train and eval jobs; read their progress, metrics and results.",
        lifespan=_collector_off_the_request_path,
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
    access_log.install()
    app.include_router(jobs.router)  # first: routes are matched in order, POST /jobs is hot
    app.include_router(health.router)
    app.include_router(fleet.router)
    app.include_router(usage.router)
    app.include_router(evals.router)
    app.include_router(schedules.router)
    app.include_router(studies.router)
    app.include_router(tokens.router)
    app.include_router(ui_router)
    app.add_exception_handler(TokenNeeded, token_page)
    app.state.telemetry.registry.register(FleetCollector())
    return app


app = create_app()
