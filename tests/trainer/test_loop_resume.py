"""A run stopped at a step boundary and resumed ends bit-identical to an uninterrupted one."""

from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.trainer.loop_specs import toy_spec
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train


class StopAfter(Callback):
    def __init__(self, step: int) -> None:
        self.stop_at, self.seen = step, 0

    def on_step_end(self, step: int, metrics) -> None:  # type: ignore[no-untyped-def]
        self.seen = step

    def should_stop(self) -> bool:
        return self.seen >= self.stop_at


def weights(checkpoint_uri: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(checkpoint_uri) / "model.safetensors"))


def test_stopped_and_resumed_run_equals_uninterrupted_run(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    spec = toy_spec(tiny_model_dir, toy_dataset, total_steps=4, checkpoint={"every_steps": 3})
    straight = train(spec, output_dir=str(tmp_path / "a"), resume=False)

    first = train(spec, output_dir=str(tmp_path / "b"), callbacks=StopAfter(2), resume=False)
    assert first.stopped and first.final_step == 2
    assert first.checkpoint is not None and first.checkpoint.step == 2  # final checkpoint on stop
    second = train(spec, output_dir=str(tmp_path / "b"), resume=True)
    assert (second.start_step, second.final_step) == (2, 4)

    assert straight.checkpoint is not None and second.checkpoint is not None
    a, b = weights(straight.checkpoint.uri), weights(second.checkpoint.uri)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert straight.metrics["reward/mean"] == second.metrics["reward/mean"]
    initial = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    assert any(not torch.equal(initial[n], a[n]) for n in a)  # training changed the weights
