"""`logging.tensorboard` / `logging.wandb` / `logging.mlflow` in a worker-run job: its
supervised child (`python -m trainer.cli`, which is `dgpo-train`) logs every step's metrics
and the sampled completions to the real trackers (files in the job's own directory; MLflow's
SQLite store named by the worker's `MLFLOW_TRACKING_URI`), read back from what they wrote."""

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import get_settings
from tests.optional import require
from tests.workers.conftest import MLFLOW_TRACKING_URI, Api, WorkerProcess

WANDB_BLOCK = 32768
"""The run file (`run-<id>.wandb`) is a LevelDB-style log of protobuf `Record`s."""


def _wandb_records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunk = 7, b""
    while pos + 7 <= len(data):
        room = WANDB_BLOCK - pos % WANDB_BLOCK
        if room < 7:  # a block's tail too short for a record header is padding
            pos += room
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or LAST of a record split across blocks
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def test_a_worker_run_job_logs_metrics_params_and_samples_to_tensorboard_wandb_and_mlflow(
    cpu_worker: WorkerProcess,
    api: Api,
    train_request: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    """One job with all three trackers on (a job's child costs more than a tracker): each
    is read back from what it wrote."""
    require("tensorboard", "tensorboard")
    require("wandb", "wandb")
    require("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(MLFLOW_TRACKING_URI)
    # As an operator would: the experiment's artifacts in a place of its choosing.
    mlflow.create_experiment("dgpo-test", artifact_location=str(tmp_path / "artifacts"))
    logging = {
        "sample_every": 2,
        "num_samples": 1,
        "tensorboard": {"enabled": True},
        "wandb": {"enabled": True, "project": "dgpo-test", "mode": "offline", "tags": ["ci"]},
        "mlflow": {"enabled": True, "experiment": "dgpo-test", "tags": {"team": "ci"}},
    }
    job_id = api.submit({**train_request(total_steps=2, every_steps=0), "logging": logging})
    job = api.wait(job_id, cpu_worker)
    assert job["status"] == "succeeded", job["error"]
    storage_root = get_settings().storage_root
    assert storage_root is not None
    out = storage_root / job_id
    logged = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    rewards = [r["metrics"]["reward/mean"] for r in logged if r["type"] == "metrics"]
    assert len(rewards) == 2
    _check_tensorboard(out / "tensorboard", rewards)
    _check_wandb(out / "wandb", job_id, rewards)
    _check_mlflow(mlflow, tmp_path / "artifacts", job_id, rewards)


def _check_tensorboard(log_dir: Path, rewards: list[float]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    scalars = events.Scalars("reward/mean")
    assert [s.step for s in scalars] == [1, 2]
    assert [s.value for s in scalars] == pytest.approx(rewards)
    (text,) = events.Tensors("samples/text_summary")
    assert text.step == 2
    sample = text.tensor_proto.string_val[0].decode()
    assert sample.startswith("    step 2: 1 of 4 completions") and "prompt: Say " in sample


def _check_wandb(wandb_dir: Path, run_name: str, rewards: list[float]) -> None:
    (run_dir,) = wandb_dir.glob("offline-run-*")
    (run_file,) = run_dir.glob("run-*.wandb")
    records = list(_wandb_records(run_file))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.display_name, list(run.tags)) == ("dgpo-test", run_name, ["ci"])
    history = [
        {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [h["_step"] for h in history] == [1, 2]
    assert [h["reward/mean"] for h in history] == pytest.approx(rewards)
    assert "samples/path" not in history[0]
    table = json.loads((run_dir / "files" / history[1]["samples/path"]).read_text())
    assert table["columns"] == ["step", "samples"]
    ((step, sample),) = table["data"]
    assert step == 2 and sample.startswith("step 2: 1 of 4 completions")


def _check_mlflow(mlflow: Any, artifacts: Path, run_name: str, rewards: list[float]) -> None:
    experiment = mlflow.get_experiment_by_name("dgpo-test")
    (run,) = mlflow.search_runs([experiment.experiment_id])
    assert (run.info.run_name, run.info.status) == (run_name, "FINISHED")
    assert run.data.tags["team"] == "ci"
    assert run.data.params["optim.lr"] == "1e-06" and run.data.params["total_steps"] == "2"
    history = mlflow.get_metric_history(run.info.run_id, "reward/mean")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx(rewards)
    (sample,) = artifacts.glob(f"{run.info.run_id}/artifacts/samples/*.txt")
    assert sample.name == "step_000002.txt"
    assert sample.read_text().startswith("step 2: 1 of 4 completions")
