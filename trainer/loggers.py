"""Default run loggers: metrics and events to a JSONL file; W&B / TensorBoard optional.

Each is a `Callback`, so the CLI stacks them in a `CallbackList` and the Celery worker
can reuse them beside its database writer.
"""

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.callbacks import Callback, CheckpointInfo


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
    """Metrics to Weights & Biases (`pip install 'dgpo[wandb]'`)."""

    def __init__(self, **init_kwargs: Any) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError("WandbLogger needs `pip install 'dgpo[wandb]'`") from exc
        self.run = wandb.init(**init_kwargs)

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)


class TensorBoardLogger(Callback):
    """Metrics as TensorBoard scalars (`pip install 'dgpo[tensorboard]'`)."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("TensorBoardLogger needs `pip install 'dgpo[tensorboard]'`") from exc
        self.writer = SummaryWriter(str(log_dir))

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()
