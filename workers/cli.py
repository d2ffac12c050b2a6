"""`dgpo worker` and `dgpo beat`: thin wrappers that exec `celery` with our defaults."""

import os
import socket
import sys
from typing import Annotated

import typer

from workers import gpus, routing

APP = "workers.celery_app:app"


def _exec(argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with celery, so signals (TERM for warm shutdown) reach it."""
    os.environ.update(env)
    os.execv(sys.executable, [sys.executable, "-m", *argv])


def worker_command(
    queues: Annotated[
        str | None,
        typer.Option(help="Comma-separated queues, e.g. gpu.h100,gpu.any (default: detected)"),
    ] = None,
    slots: Annotated[int, typer.Option(min=1, help="Jobs run at once; one GPU share each")] = 1,
    name: Annotated[
        str | None, typer.Option(help="Worker name (default dgpo-<pid>@<host>)")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="celery log level")] = "INFO",
) -> None:
    """Serve jobs from the given queues: one pool process per slot, pinned to its GPUs."""
    queue_list = queues or ",".join(routing.queues_for(gpus.detect().gpu_type))
    hostname = name or f"dgpo-{os.getpid()}@{socket.gethostname()}"
    argv = [
        "celery", "-A", APP, "worker",
        "--queues", f"{queue_list},{routing.member_queue(hostname)}",
        "--concurrency", str(slots),
        "--pool", "prefork",
        "--prefetch-multiplier", "1",
        "--hostname", hostname,
        "--without-gossip", "--without-mingle",
        "--loglevel", loglevel,
    ]  # fmt: skip
    _exec(argv, {"DGPO_WORKER_SLOTS": str(slots)})


def beat_command(
    loglevel: Annotated[str, typer.Option(help="celery log level")] = "INFO",
) -> None:
    """Run the periodic reconciler (exactly one per deployment): beat plus the process
    that serves its maintenance queue, so it never waits behind a training job."""
    from config.settings import get_settings

    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    argv = [
        "celery", "-A", APP, "worker", "--beat",
        "--queues", routing.MAINTENANCE_QUEUE,
        "--pool", "solo",
        "--hostname", f"dgpo-beat-{os.getpid()}@{socket.gethostname()}",
        "--schedule", str(home / "celerybeat-schedule"),
        "--without-gossip", "--without-mingle",
        "--loglevel", loglevel,
    ]  # fmt: skip
    _exec(argv, {})
