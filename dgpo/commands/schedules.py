"""`dgpo schedules ...`: nightly regression schedules (cron + eval spec + baseline)."""

from pathlib import Path
from typing import Annotated

import typer

from dgpo.commands._api import api_client, console, print_json, print_table
from dgpo.commands.spec_errors import SpecFileError, read_yaml

app = typer.Typer(help="Cron schedules that evaluate and compare with a baseline.")

SCHEDULE_COLUMNS = ("id", "name", "cron", "enabled", "next_run_at", "last_run_at")
RUN_COLUMNS = ("id", "job_id", "verdict", "created_at", "finished_at")


@app.command("list")
def list_schedules(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every schedule with its next and last run."""
    with api_client() as api:
        schedules = api.list_schedules()
    if as_json:
        print_json(schedules)
    else:
        print_table(schedules, SCHEDULE_COLUMNS)


@app.command()
def create(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Schedule YAML")],
) -> None:
    """Create a schedule from a YAML file (the body of POST /schedules)."""
    try:
        body = read_yaml(spec)
    except SpecFileError as exc:
        console.print(exc.lines[0], markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    if not isinstance(body, dict):
        raise typer.BadParameter(f"{spec} must hold a mapping (name, cron, spec, target, ...)")
    with api_client() as api:
        schedule = api.create_schedule(body)
    console.print(
        f"{schedule['id']}  {schedule.get('name', '')}  next: {schedule.get('next_run_at')}"
    )


@app.command()
def trigger(schedule_id: str) -> None:
    """Run a schedule now (for testing a new schedule)."""
    with api_client() as api:
        run = api.trigger_schedule(schedule_id)
    print_json(run)


@app.command()
def runs(schedule_id: str) -> None:
    """A schedule's runs and their verdicts (pass, regression, improvement)."""
    with api_client() as api:
        print_table(api.list_schedule_runs(schedule_id), RUN_COLUMNS)
