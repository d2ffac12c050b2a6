"""Standalone command lines: `dgpo-train SPEC.yaml` (here) and `dgpo-eval SPEC.yaml`.

The spec file is either a bare TrainSpec or a job request with `kind: train`; metrics
go to `<output>/metrics.jsonl` (a log for humans) and to the trackers `logging` enables
(`<output>/tensorboard`, `<output>/wandb`), checkpoints to `<output>/step-*/`. The
output may be an fsspec URI; metrics then go to its local staging directory. Run under
torchrun (`trainer.distributed.launch.torchrun_command`) it trains as one FSDP2 group and rank 0
alone logs. A supervisor (the Celery worker) adds `--report-file` (every callback,
`trainer.reporting.channel`), `--stop-file` (stop at the next step boundary) and
`--heartbeat-file` (stop at once when it goes stale: `trainer.reporting.fence`).
"""

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trainer.reporting.callbacks import Callback, CallbackList, CheckpointInfo
from trainer.results import BenchmarkResult
from trainer.spec import TrainSpec
from trainer.spec.jobs import without_envelope

console = Console(stderr=True)


def load_train_spec(path: Path) -> TrainSpec:
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and data.get("kind") == "train":
        data = without_envelope(data)
    return TrainSpec.model_validate(data)


class ProgressCallback(Callback):
    """A progress bar with step, reward and ETA; events and checkpoints as log lines."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("train", total=None, reward=float("nan"))

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        self.progress.update(self.task, total=total_steps, completed=start_step)

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.progress.update(self.task, completed=step, reward=metrics.get("reward/mean"))

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        self.progress.console.log(f"checkpoint step {info.step}: {info.uri}")

    def on_eval(self, step: int, results: Sequence[BenchmarkResult]) -> None:
        scores = ", ".join(
            f"{r.benchmark} {k} {v:.3f}" for r in results for k, v in r.scores.items()
        )
        self.progress.console.log(f"eval step {step}: {scores}")

    def on_event(self, kind: str, message: str) -> None:
        self.progress.console.log(f"[{kind}] {message}")


class StopFile(Callback):
    """Stops the run (after a final checkpoint) once `path` exists.

    How a supervisor asks a run to stop cleanly: the file is polled at every step
    boundary (by rank 0 in a torchrun group, and the whole group follows its decision).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def should_stop(self) -> bool:
        return self.path.exists()


def _train(
    spec_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="spec YAML")],
    output: Annotated[
        str | None,
        typer.Option(help="run directory or fsspec URI (default: checkpoint.output_dir)"),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="continue from the newest valid checkpoint in the output")
    ] = False,
    stop_file: Annotated[
        Path | None,
        typer.Option(help="stop after a final checkpoint once this file exists"),
    ] = None,
    report_file: Annotated[
        Path | None,
        typer.Option(help="append every callback to this JSON-lines file (for a supervisor)"),
    ] = None,
    heartbeat_file: Annotated[
        Path | None,
        typer.Option(help="exit at once, writing nothing more, once this file goes stale"),
    ] = None,
    heartbeat_timeout: Annotated[
        float, typer.Option(help="seconds after which --heartbeat-file is stale")
    ] = 30.0,
) -> None:
    """Train a policy with DGPO (or a baseline loss) as described by SPEC_FILE."""
    import torch

    from trainer.checkpoints.hub_push import HubPush
    from trainer.checkpoints.remote import is_remote, staging_dir
    from trainer.extras import missing_extras
    from trainer.reporting.channel import ReportWriter
    from trainer.reporting.fence import HeartbeatFence
    from trainer.reporting.loggers import JsonlLogger, trackers
    from trainer.rl.loop import train

    spec = load_train_spec(spec_file)
    out = output or spec.checkpoint.output_dir
    if out is None:
        raise typer.BadParameter("give --output or set checkpoint.output_dir in the spec")
    local = staging_dir(out) if is_remote(out) else Path(out)
    if missing := missing_extras(spec):
        raise typer.BadParameter("; ".join(f"{'.'.join(loc)} {msg}" for loc, msg in missing))
    push = spec.checkpoint.push_to_hub
    if push is not None and is_remote(out):
        raise typer.BadParameter(f"checkpoint.push_to_hub needs a local output, not {out!r}")
    columns = (
        TextColumn("step {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("reward {task.fields[reward]:.3f}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress, ExitStack() as opened:
        hooks: list[Callback] = []
        if heartbeat_file is not None:  # first: it must stop the run before anything writes
            hooks.append(HeartbeatFence(heartbeat_file, heartbeat_timeout))
        hooks += [ProgressCallback(progress), JsonlLogger(local / "metrics.jsonl")]
        hooks += [opened.enter_context(tracker) for tracker in trackers(spec, local)]
        if stop_file is not None:
            hooks.append(StopFile(stop_file))
        if report_file is not None:
            hooks.append(ReportWriter(report_file))
        callbacks = CallbackList(hooks)
        if push is not None:
            callbacks.callbacks.append(HubPush(push, events=callbacks))
        # A supervisor sets OMP_NUM_THREADS to its slot's share of the cores (workers.cpus).
        progress.console.log(f"torch uses {torch.get_num_threads()} CPU threads")
        result = train(spec, output_dir=out, callbacks=callbacks, resume=resume)
    where = result.checkpoint.uri if result.checkpoint else "no checkpoint"
    console.print(f"done at step {result.final_step}: {where}")


def train_main() -> None:
    """Entry point of `dgpo-train`."""
    typer.run(_train)


def eval_main() -> None:
    """Entry point of `dgpo-eval`; the command lives in `trainer.evaluation.cli`."""
    from trainer.evaluation.cli import eval_main as run_eval_cli

    run_eval_cli()


if __name__ == "__main__":  # `python -m trainer.cli SPEC` is how torchrun starts each rank
    train_main()
