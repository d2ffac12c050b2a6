"""`dgpo usage`: GPU and wall seconds of ended attempts per principal, job or queue."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from dgpo.commands._api import api_client, print_json, print_table


def usage(
    by: Annotated[str, typer.Option(help="principal, job or queue")] = "principal",
    hours: Annotated[float, typer.Option(min=0, help="Window: attempts ended this recently")] = 24,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What each principal (job, queue) used: your principal's own, or everyone's with an
    admin token."""
    now = datetime.now(UTC)
    with api_client() as api:
        report = api.usage(by=by, since=now - timedelta(hours=hours), until=now)
    if as_json:
        print_json(report)
        return
    rows = [
        {**row, "gpu_hours": _hours(row["gpu_seconds"]), "wall_hours": _hours(row["wall_seconds"])}
        for row in report["rows"]
    ]
    title = f"usage by {by}, last {hours:g} h"
    print_table(rows, ("key", "attempts", "gpu_hours", "wall_hours"), title)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f}"
