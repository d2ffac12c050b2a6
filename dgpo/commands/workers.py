"""`dgpo workers list|drain`: the fleet's workers, and taking one out of service."""

from typing import Annotated

import typer

from dgpo.commands._api import api_client, console, print_json, print_table

app = typer.Typer(help="List workers and drain them.", no_args_is_help=True)

COLUMNS = ("id", "status", "gpu_type", "gpu_count", "slots", "queues", "running_job_ids")


@app.command("list")
def list_workers(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered workers: status (alive, draining, drained, dead), GPUs, slots, jobs."""
    with api_client() as api:
        workers = api.workers()
    if as_json:
        print_json(workers)
        return
    print_table(workers, COLUMNS, "workers")


@app.command()
def drain(
    worker_id: Annotated[str, typer.Argument(help="The worker's id (`dgpo workers list`)")],
    preempt: Annotated[
        bool,
        typer.Option(
            "--preempt",
            help="Preempt its running jobs: each checkpoints and goes back to the queue",
        ),
    ] = False,
) -> None:
    """Stop a worker claiming jobs; its running jobs finish, or with --preempt checkpoint
    and go back to the queue (admin token). Once it reports `drained` it can be stopped
    without losing work."""
    with api_client() as api:
        worker = api.drain_worker(worker_id, preempt=preempt)
    running = len(worker["running_job_ids"])
    doing = "being preempted" if preempt else "finishing"
    console.print(
        f"{worker['id']}  {worker['status']}" + (f" ({running} job(s) {doing})" if running else "")
    )
