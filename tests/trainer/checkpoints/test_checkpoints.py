"""Checkpoints are loadable HF directories; corrupt or non-finite ones are never used."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.trainer.loop_specs import toy_spec
from trainer.checkpoints.local import (
    NonFiniteModelError,
    latest_valid_checkpoint,
    list_checkpoints,
    save_checkpoint,
    verify_checkpoint,
)
from trainer.reporting.callbacks import Callback, CheckpointInfo
from trainer.rl.loop import train


class Recorder(Callback):
    def __init__(self) -> None:
        self.checkpoints: list[CheckpointInfo] = []
        self.start_step = -1
        self.events: list[str] = []

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        self.start_step = start_step

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        self.checkpoints.append(info)

    def on_event(self, kind: str, message: str) -> None:
        self.events.append(kind)


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir: str, toy_dataset: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("run")
    recorder = Recorder()
    spec = toy_spec(tiny_model_dir, toy_dataset, total_steps=3, checkpoint={"keep_last": 2})
    train(spec, output_dir=str(out), callbacks=recorder, resume=False)
    return out, recorder, spec


def test_every_checkpoint_loads_with_from_pretrained(run_dir) -> None:  # type: ignore[no-untyped-def]
    out, recorder, _ = run_dir
    assert [c.step for c in recorder.checkpoints] == [1, 2, 3]
    kept = list_checkpoints(out)
    assert [p.name for p in kept] == ["step-00000002", "step-00000003"]  # keep_last=2
    for path in kept:
        info = verify_checkpoint(path)
        assert info is not None and "model.safetensors" in info.info.files
        model = AutoModelForCausalLM.from_pretrained(path)
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_truncated_checkpoint_is_detected_and_resume_falls_back(run_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, _, spec = run_dir
    newest = out / "step-00000003" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    valid, rejected = latest_valid_checkpoint(out)
    assert valid is not None and valid.info.step == 2
    assert [p.name for p in rejected] == ["step-00000003"]

    recorder = Recorder()
    result = train(spec, output_dir=str(out), callbacks=recorder, resume=True)
    assert recorder.start_step == 2 and result.final_step == 3
    assert "checkpoint_rejected" in recorder.events
    assert verify_checkpoint(out / "step-00000003") is not None  # rewritten, now valid


def test_non_finite_model_is_never_checkpointed(tiny_model_dir: str, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    with pytest.raises(NonFiniteModelError):
        save_checkpoint(tmp_path, 1, model, None, {}, keep_last=1)
    assert list_checkpoints(tmp_path) == []
