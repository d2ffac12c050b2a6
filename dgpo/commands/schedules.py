"""`dgpo schedules ...`: nightly regression schedules (cron + eval spec + baseline)."""

from pathlib import Path
from typing import Annotated, Any

import typer

from dgpo.commands._api import api_client, console, minute, print_json, print_table
from dgpo.commands.spec_errors import SpecFileError, read_yaml

app = typer.Typer(help="Cron schedules that evaluate and compare with a baseline.")

SCHEDULE_COLUMNS = ("id", "name", "cron", "enabled", "next run", "last run")
RUN_COLUMNS = ("id", "job_id", "verdict", "started", "finished")


def _schedule_rows(schedules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Times to the minute (UTC) so the id fits whole in 100 columns."""
    return [
        {**s, "next run": minute(s.get("next_run_at")), "last run": minute(s.get("last_run_at"))}
        for s in schedules
    ]


@app.command("list")
def list_schedules(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every schedule with its next and last run."""
    with api_client() as api:
        schedules = api.list_schedules()
    if as_json:
        print_json(schedules)
    else:
        print_table(_schedule_rows(schedules), SCHEDULE_COLUMNS, keep=("id",))


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
def trigger(schedule_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Run a schedule now (for testing a new schedule)."""
    with api_client() as api:
        run = api.trigger_schedule(schedule_id)
    if as_json:
        print_json(run)
        return
    console.print(f"run {run['id']} started: eval job {run['job_id']}")
    console.print(
        f"follow it with `dgpo jobs watch {run['job_id']}`; its verdict then shows in "
        f"`dgpo schedules runs {schedule_id}`"
    )


@app.command()
def patch(
    schedule_id: str,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn the schedule on or off")
    ] = None,
    cron: Annotated[str | None, typer.Option(help="New cron, e.g. '0 3 * * *'")] = None,
    threshold: Annotated[float | None, typer.Option(help="Accuracy drop to flag")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="URL POSTed on a regression")] = None,
    no_webhook: Annotated[bool, typer.Option("--no-webhook", help="Remove the webhook")] = False,
) -> None:
    """Change a schedule; options not given stay as they are."""
    body: dict[str, object] = {
        key: value
        for key, value in (
            ("enabled", enable),
            ("cron", cron),
            ("threshold", threshold),
            ("webhook_url", webhook_url),
        )
        if value is not None
    }
    if no_webhook:
        body["webhook_url"] = None
    if not body:
        raise typer.BadParameter("give at least one change (see --help)")
    with api_client() as api:
        schedule = api.update_schedule(schedule_id, body)
    print_table(_schedule_rows([schedule]), SCHEDULE_COLUMNS, keep=("id",))


@app.command()
def delete(schedule_id: str) -> None:
    """Delete a schedule and its run history (the eval jobs it submitted stay)."""
    with api_client() as api:
        api.delete_schedule(schedule_id)
    console.print(f"deleted schedule {schedule_id}")


@app.command()
def runs(schedule_id: str) -> None:
    """A schedule's runs and their verdicts (pass, regression, improvement)."""
    with api_client() as api:
        rows = [
            {**r, "started": minute(r["created_at"]), "finished": minute(r["finished_at"])}
            for r in api.list_schedule_runs(schedule_id)
        ]
        print_table(rows, RUN_COLUMNS, keep=("job_id",))
