"""`logging.tensorboard` / `logging.wandb`: `dgpo-train` (and so every worker-run job, whose
supervised child is `python -m trainer.cli`) logs each step's metrics and the sampled
completions to the real trackers, read back from the files they write."""

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tests.optional import require
from tests.trainer.loop_specs import toy_spec
from trainer.cli import _train
from trainer.spec import TrainSpec

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


def _run_train(tmp_path: Path, logging: dict[str, Any]) -> Path:
    spec = toy_spec(
        "tiny",
        "toy-digits",
        total_steps=2,
        checkpoint={"every_steps": 0},
    )
    logging = {"sample_every": 2, "num_samples": 1, **logging}
    spec = TrainSpec.model_validate({**spec.model_dump(), "logging": logging})
    spec_file, out = tmp_path / "spec.yaml", tmp_path / "run"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    app = typer.Typer()
    app.command()(_train)
    result = CliRunner().invoke(app, [str(spec_file), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_dgpo_train_logs_every_step_and_the_samples_to_tensorboard_and_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("tensorboard", "tensorboard")
    require("wandb", "wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb_cfg = {"enabled": True, "project": "dgpo-test", "mode": "offline", "tags": ["ci"]}
    out = _run_train(tmp_path, {"tensorboard": {"enabled": True}, "wandb": wandb_cfg})
    logged = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    rewards = [r["metrics"]["reward/mean"] for r in logged if r["type"] == "metrics"]
    assert len(rewards) == 2
    _check_tensorboard(out / "tensorboard", rewards)
    _check_wandb(out / "wandb", rewards)


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
    assert sample.startswith("    step 2: 1 of 32 completions") and "prompt: Say " in sample


def _check_wandb(wandb_dir: Path, rewards: list[float]) -> None:
    (run_dir,) = wandb_dir.glob("offline-run-*")
    (run_file,) = run_dir.glob("run-*.wandb")
    records = list(_wandb_records(run_file))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.display_name, list(run.tags)) == ("dgpo-test", "run", ["ci"])
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
    assert step == 2 and sample.startswith("step 2: 1 of 32 completions")
