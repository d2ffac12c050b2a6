"""`dgpo jobs ...`: submit, list, show, cancel, watch and plot jobs through the REST API."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dgpo.client import JOB_STATUSES, DgpoClient
from dgpo.commands._api import (
    api_client,
    console,
    exit_invalid,
    minute,
    print_json,
    print_table,
    print_warnings,
)
from dgpo.commands.spec_errors import SpecFileError, load_job_spec

app = typer.Typer(help="Submit and follow train/eval jobs.", no_args_is_help=True)

JOB_COLUMNS = ("id", "kind", "status", "progress", "queue", "created (UTC)")
WIDE_METRICS = 6
"""Up to this many metrics print one column each; more print one row each."""
STEP_COLUMN_WIDTH = 12


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML/JSON job file")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="KEY=VALUE overrides of the file, e.g. optim.lr=1e-5 (YAML values)"),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", "-k", help="Retry-safe submission key")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON")] = False,
) -> None:
    """Validate SPEC (with its overrides) locally, then submit it; prints the new job's id."""
    try:
        request = load_job_spec(spec, overrides or [])
    except SpecFileError as exc:
        exit_invalid(spec, "job spec", exc.lines)
    with api_client() as api:
        job = api.submit_job(request, idempotency_key=idempotency_key)
    if as_json:
        print_json(job)
        return
    console.print(f"{job['id']}  {job['kind']}  {job['status']}  queue={job['queue']}")
    print_warnings(job.get("warnings", []))


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help=", ".join(JOB_STATUSES))] = None,
    kind: Annotated[str | None, typer.Option(help="train or eval")] = None,
    meta: Annotated[list[str] | None, typer.Option(help="Metadata filter KEY=VALUE")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Newest jobs first."""
    metadata = dict(_key_value(m) for m in meta or [])
    with api_client() as api:
        page = api.list_jobs(status=status, kind=kind, metadata=metadata, limit=limit)
    if as_json:
        print_json(page)
        return
    rows = [
        {**job, "progress": job["progress_text"], "created (UTC)": minute(job["created_at"])}
        for job in page["items"]
    ]
    print_table(rows, JOB_COLUMNS, keep=("id",))
    if page.get("next_cursor"):
        console.print(f"[dim]more: --limit {limit * 2} or use the API cursor[/dim]")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"expected KEY=VALUE, got {text!r}")
    return key, value


@app.command()
def show(
    job_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A job's status, checkpoints and eval results."""
    with api_client() as api:
        job = api.get_job(job_id)
        checkpoints = api.job_checkpoints(job_id)
        results = api.job_results(job_id)
    if as_json:
        print_json({"job": job, "checkpoints": checkpoints, "results": results})
        return
    fields = ("id", "kind", "status", "queue", "priority", "attempt", "progress_text", "error")
    shown = {**job, "error": _error_text(job["error"]) if job["error"] else None}
    rows = [{"field": f.removesuffix("_text"), "value": shown.get(f)} for f in fields]
    # The labels keep their width; a long value (the error) wraps under its column.
    print_table(rows, ("field", "value"), keep=("field",))
    if checkpoints:
        rows = [{**c, "sha256": c["sha256"][:12]} for c in checkpoints]
        print_table(rows, ("step", "uri", "size_bytes", "sha256"), "checkpoints")
    print_results(results)


def _error_text(error: dict[str, Any]) -> str:
    """`data_missing (attempt 1): dataset.path ... does not exist`."""
    return f"{error['code']} (attempt {error['attempt']}): {error['message']}"


def print_results(results: list[dict[str, Any]]) -> None:
    """Eval results as one row per benchmark (and step), one column per score."""
    if not results:
        return
    scores = sorted({name for r in results for name in r["scores"]})
    rows = [{"benchmark": r["benchmark"], "step": r.get("step"), **r["scores"]} for r in results]
    print_table(rows, ("benchmark", "step", *scores), "eval results")


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a job (queued: at once; running: after its current step)."""
    with api_client() as api:
        job = api.cancel_job(job_id)
    console.print(f"{job['id']}  {job['status']}")


@app.command()
def watch(job_id: str) -> None:
    """Live progress bar, the job's events and the latest metrics until the job finishes
    (over the API's event stream: nothing is polled)."""
    with api_client() as api:
        job = follow(api, job_id)
    error = f": {_error_text(job['error'])}" if job["error"] else ""
    console.print(f"{job['id']} {job['status']}{error}", markup=False, highlight=False)
    if job["status"] != "succeeded":
        raise typer.Exit(1)


LEVEL_STYLES = {"info": "dim", "warning": "yellow", "error": "red"}


def follow(api: DgpoClient, job_id: str) -> dict[str, Any]:
    """Render a job's progress and events as the event stream delivers them until it is
    terminal; returns the final job (used by `demo`).

    A terminal gets a live bar; a pipe or a log gets one line per event and per change of
    status or step (a live display there prints only when it stops, and leaves the cursor
    on its last border).
    """
    if not console.is_terminal:
        return _follow_lines(api, job_id)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[text]}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    task = progress.add_task(f"{job_id[:8]}", total=100, text="", status="")
    latest: dict[str, Any] = {}
    last_step = 0
    with Live(Group(progress), console=console, refresh_per_second=4) as live:
        for kind, body in api.stream_job(job_id):
            if kind == "job_event":
                live.console.print(_event_line(body), highlight=False, overflow="ellipsis")
                continue
            job = body
            new = api.job_metrics(job_id, min_step=last_step + 1)
            if new:
                last_step, latest = new[-1]["step"], new[-1]["values"]
            percent = 100.0 if job["status"] == "succeeded" else 100.0 * job["progress"]
            progress.update(
                task, completed=percent, text=job["progress_text"], status=_doing(job, last_step)
            )
            live.update(Group(progress, _metrics_table(last_step, latest)))
    return job


def _event_line(event: dict[str, Any]) -> Text:
    """`12:01:07 warning checkpoint_skipped: disk full; not saved` (first line only)."""
    level = event["level"]
    line = Text(f"{event['ts'][11:19]} ")
    line.append(f"{level:<7} {event['kind']}", style=LEVEL_STYLES[level])
    line.append(f": {event['message'].splitlines()[0] if event['message'] else ''}")
    return line


def _follow_lines(api: DgpoClient, job_id: str) -> dict[str, Any]:
    """`follow` for a pipe: each event, a line whenever the status, its reason or the step
    changes, and the last step's metrics once the job ends."""
    said, last_step, latest = "", 0, {}
    job: dict[str, Any] = {}
    for kind, body in api.stream_job(job_id):
        if kind == "job_event":
            console.print(_event_line(body), highlight=False, soft_wrap=True)
            continue
        job = body
        new = api.job_metrics(job_id, min_step=last_step + 1)
        if new:
            last_step, latest = new[-1]["step"], new[-1]["values"]
        line = f"{job_id[:8]}  {job['progress_text']}  {_doing(job, last_step)}"
        if line != said:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
            said = line
    if latest:
        console.print(_metrics_table(last_step, latest))
    return job


def _doing(job: dict[str, Any], step: int) -> str:
    """What the job is waiting for, so a quiet bar is never a mystery."""
    if job["status"] == "queued":
        return f"queued: waiting for a worker on queue {job['queue']}"
    if job["status"] == "running" and not step:
        return "running: loading the model and data" if job["kind"] == "train" else "running"
    return job["status"]


def _metrics_table(step: int, values: dict[str, Any]) -> Table:
    table = Table(title=f"step {step}" if values else "no metrics yet", show_header=False)
    for name in sorted(values):
        value = values[name]
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


@app.command()
def metrics(
    job_id: str,
    names: Annotated[list[str] | None, typer.Option("--name", help="Only these metrics")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the curves here")] = None,
    last: Annotated[int, typer.Option(help="Rows to print")] = 10,
) -> None:
    """Print the latest metric rows, or plot every curve to a PNG (needs matplotlib)."""
    with api_client() as api:
        points = api.job_metrics(job_id, names=names)
    if not points:
        console.print(f"job {job_id} has reported no metrics yet")
        raise typer.Exit(1)
    if plot is not None:
        from dgpo.commands.plot import plot_metrics

        plot_metrics(points, plot, title=f"job {job_id}")
        console.print(f"wrote {plot}")
        return
    names_seen = sorted({n for p in points for n in p["values"]})
    if len(names_seen) <= WIDE_METRICS:
        rows = [{"step": p["step"], **p["values"]} for p in points[-last:]]
        print_table(rows, ("step", *names_seen))
        return
    # Many metrics: one row per metric and one column per recent step, as many as fit.
    fit = max(1, (console.width - max(map(len, names_seen)) - 2) // STEP_COLUMN_WIDTH)
    recent = points[-min(last, fit) :]
    steps = [f"step {p['step']}" for p in recent]
    rows = [
        {"metric": n, **{s: p["values"].get(n) for s, p in zip(steps, recent, strict=True)}}
        for n in names_seen
    ]
    print_table(rows, ("metric", *steps), keep=("metric",))
