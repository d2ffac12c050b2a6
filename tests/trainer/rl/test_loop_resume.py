"""A run stopped at a step boundary and resumed ends bit-identical to an uninterrupted one,
in fp32 and in bf16 compute (whose fp32 master weights the checkpoint must carry)."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.loop_specs import StopAfter, toy_spec
from trainer.rl.loop import train


def weights(checkpoint_uri: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(checkpoint_uri) / "model.safetensors"))


def learning(metrics: dict[str, float]) -> dict[str, float]:
    """The step's metrics less wall-clock ones (NaN-free on this task)."""
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "perf/"))}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_stopped_and_resumed_run_equals_uninterrupted_run(
    dtype: str, tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    spec = toy_spec(tiny_model_dir, toy_dataset, total_steps=4, checkpoint={"every_steps": 3})
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"dtype": dtype})})
    straight = train(spec, output_dir=str(tmp_path / "a"), resume=False)

    first = train(spec, output_dir=str(tmp_path / "b"), callbacks=StopAfter(2), resume=False)
    assert first.stopped and first.final_step == 2
    assert first.checkpoint is not None and first.checkpoint.step == 2  # final checkpoint on stop
    second = train(spec, output_dir=str(tmp_path / "b"), resume=True)
    assert (second.start_step, second.final_step) == (2, 4)

    assert straight.checkpoint is not None and second.checkpoint is not None
    a, b = weights(straight.checkpoint.uri), weights(second.checkpoint.uri)
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differing, f"{len(differing)}/{len(a)} tensors differ after the resume"
    assert learning(straight.metrics) == learning(second.metrics)
    initial = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    assert any(
        not torch.equal(initial[n].float(), a[n].float()) for n in initial
    )  # training moved them
