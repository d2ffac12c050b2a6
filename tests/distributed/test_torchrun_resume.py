"""A bf16 torchrun group stopped and resumed ends bit-identical to an uninterrupted one: the
sharded checkpoint carries the fp32 master weights and the resume loads them as they are."""

import subprocess
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from tests.distributed.test_torchrun_train import TIMEOUT_S, tiny_train_spec
from trainer.checkpoints.local import latest_valid_checkpoint
from trainer.distributed.launch import torchrun_command


def _group(spec_file: Path, out: Path, mode: str) -> Path:
    cmd = torchrun_command(2, "tests.distributed.resume_run", [str(spec_file), str(out), mode])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    checkpoint, _ = latest_valid_checkpoint(out)
    assert checkpoint is not None
    return checkpoint.path


def test_bf16_group_stopped_and_resumed_equals_uninterrupted_group(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    spec = tiny_train_spec(tiny_model_dir, toy_dataset, total_steps=4)
    spec["model"]["dtype"] = "bfloat16"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    straight = _group(spec_file, tmp_path / "a", "straight")
    stopped = _group(spec_file, tmp_path / "b", "stop-after-2")
    assert stopped.name == "step-00000002"
    resumed = _group(spec_file, tmp_path / "b", "resume")
    assert (straight.name, resumed.name) == ("step-00000004", "step-00000004")

    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differing, f"{len(differing)}/{len(a)} tensors differ after the resume"
    initial = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    assert any(not torch.equal(initial[n].float(), a[n].float()) for n in initial)
