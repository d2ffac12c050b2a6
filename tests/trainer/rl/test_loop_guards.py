"""Non-finite losses skip the update; too many in a row abort with a clear error."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.loop_specs import toy_spec
from trainer.checkpoints.local import list_checkpoints
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train
from trainer.rl.update import NonFiniteUpdatesError


class Skips(Callback):
    def __init__(self) -> None:
        self.skipped: list[float] = []

    def on_step_end(self, step: int, metrics) -> None:  # type: ignore[no-untyped-def]
        self.skipped.append(metrics["update/skipped_total"])


def test_nan_model_skips_updates_then_aborts_without_checkpoint(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    model.save_pretrained(tmp_path / "nan_model")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "nan_model")
    before = model.model.layers[0].mlp.up_proj.weight.clone()

    spec = toy_spec(
        str(tmp_path / "nan_model"),
        toy_dataset,
        total_steps=5,
        optim={"max_consecutive_skips": 3},
    )
    skips = Skips()
    with pytest.raises(NonFiniteUpdatesError, match="3 consecutive updates"):
        train(spec, output_dir=str(tmp_path / "out"), callbacks=skips, resume=False)
    assert skips.skipped == [1.0, 2.0]  # steps 1 and 2 were skipped and reported
    assert list_checkpoints(tmp_path / "out") == []  # never saved a non-finite model
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "nan_model")
    assert torch.equal(reloaded.model.layers[0].mlp.up_proj.weight, before)
