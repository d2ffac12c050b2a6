"""Run loggers: metrics and events to a JSONL file; W&B / TensorBoard / MLflow when the
spec's `logging` enables them (`trainer.extras` checks their packages before a run starts).

Each is a `Callback`, so the CLI (standalone, or the supervised child a worker starts)
stacks them in a `CallbackList`.
"""

import json
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from trainer.reporting.callbacks import Callback, CheckpointInfo
from trainer.spec import TrainSpec


class JsonlLogger(Callback):
    """One JSON object per line: `{"type": "metrics"|"checkpoint"|"event", ...}`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"time": time.time(), **record}) + "\n")

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self._write({"type": "metrics", "step": step, "metrics": dict(metrics)})

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        self._write(
            {"type": "checkpoint", "step": info.step, "uri": info.uri, "sha256": info.sha256}
        )

    def on_event(self, kind: str, message: str) -> None:
        self._write({"type": "event", "kind": kind, "message": message})


class WandbLogger(Callback):
    """Metrics to Weights & Biases, and each `samples` event as a table row.

    The run opens at `on_train_start`, which only rank 0 of a torchrun group receives, so a
    multi-GPU job is one W&B run; leaving it as a context manager finishes the run.
    """

    def __init__(self, **init_kwargs: Any) -> None:
        self.init_kwargs = init_kwargs
        self.run: Any = None
        self.step = 0

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        import wandb

        self.run, self.step = wandb.init(**self.init_kwargs), start_step

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.step = step
        self.run.log(dict(metrics), step=step)

    def on_event(self, kind: str, message: str) -> None:
        if kind == "samples" and self.run is not None:
            import wandb

            table = wandb.Table(columns=["step", "samples"], data=[[self.step, message]])
            self.run.log({"samples": table}, step=self.step)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if exc_type is None else 1)  # a failed run shows so


class TensorBoardLogger(Callback):
    """Metrics as TensorBoard scalars, `samples` events as text (rank 0 only, as above)."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None
        self.step = 0

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.step = SummaryWriter(str(self.log_dir)), start_step

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.step = step
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def on_event(self, kind: str, message: str) -> None:
        if kind == "samples" and self.writer is not None:
            # Indented: TensorBoard renders text as Markdown, which would reflow it.
            self.writer.add_text("samples", textwrap.indent(message, "    "), self.step)
            self.writer.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self.writer is not None:
            self.writer.close()


class MlflowLogger(Callback):
    """Metrics to MLflow, the spec as the run's parameters, `samples` events as text
    artifacts (rank 0 only, as above).

    Uses `MlflowClient` with an explicit run id rather than the fluent `mlflow.start_run`,
    whose active run is process-global state. The tracking URI and credentials are MLflow's
    own environment variables (`MLFLOW_TRACKING_URI`, ...), read where the job runs.
    """

    PARAMS_PER_CALL = 100
    """MLflow's limit on parameters per `log_batch`."""

    def __init__(self, experiment: str, run_name: str, tags: Mapping[str, str], spec: TrainSpec):
        self.experiment, self.run_name, self.tags = experiment, run_name, dict(tags)
        self.params = _flat(spec.model_dump(mode="json"))
        self.client: Any = None
        self.run_id = ""
        self.step = 0

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client, self.step = MlflowClient(), start_step
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id if found else self.client.create_experiment(self.experiment)
        )
        run = self.client.create_run(experiment_id, run_name=self.run_name, tags=self.tags)
        self.run_id = run.info.run_id
        params = [Param(key, value) for key, value in self.params.items()]
        for i in range(0, len(params), self.PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[i : i + self.PARAMS_PER_CALL])

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        self.step, now = step, int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def on_event(self, kind: str, message: str) -> None:
        if kind == "samples" and self.client is not None:
            self.client.log_text(self.run_id, message, f"samples/step_{self.step:06d}.txt")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self.client is not None:
            status = "FINISHED" if exc_type is None else "FAILED"  # a failed run shows so
            self.client.set_terminated(self.run_id, status)


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"optim": {"lr": 1e-6}}` -> `{"optim.lr": "1e-06"}`: MLflow parameters are flat."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if not isinstance(value, str) else value
    return flat


Tracker = WandbLogger | TensorBoardLogger | MlflowLogger


def trackers(spec: TrainSpec, local_dir: Path) -> list[Tracker]:
    """The trackers `spec.logging` enables, writing under the run's local directory."""
    found: list[Tracker] = []
    if spec.logging.tensorboard.enabled:
        found.append(TensorBoardLogger(local_dir / "tensorboard"))
    wb = spec.logging.wandb
    if wb.enabled:
        local_dir.mkdir(parents=True, exist_ok=True)
        found.append(
            WandbLogger(
                project=wb.project,
                entity=wb.entity,
                mode=wb.mode,
                tags=wb.tags,
                name=local_dir.name,
                dir=str(local_dir),
                config=spec.model_dump(mode="json"),
            )
        )
    mf = spec.logging.mlflow
    if mf.enabled:
        found.append(MlflowLogger(mf.experiment, local_dir.name, mf.tags, spec))
    return found
