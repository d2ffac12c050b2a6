"""Every example spec validates against the one shared schema; the GPU ones, which cannot
run here, are also dry-run: accepted by the API, with the warning that no worker serves
their queue, and (multi-GPU) launchable as one torchrun rank per GPU."""

from pathlib import Path

import pytest
import yaml

from tests.conftest import bearer
from trainer.distributed.launch import torchrun_command
from trainer.spec import EvalJobRequest, TrainJobRequest, load_job_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALL = sorted(EXAMPLES.glob("*.yaml"))
GPU = [p for p in ALL if "-gpu" in p.name]


def test_examples_cover_cpu_single_gpu_and_multi_gpu() -> None:
    assert {p.name for p in ALL} >= {
        "train-cpu-tiny.yaml",
        "eval-cpu-tiny.yaml",
        "train-gpu-vllm.yaml",
        "eval-gpu-vllm.yaml",
        "train-multi-gpu.yaml",
    }


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_example_spec_validates(path: Path) -> None:
    request = load_job_file(path)
    assert isinstance(request, TrainJobRequest if path.name.startswith("train") else EvalJobRequest)
    text = path.read_text()
    assert "output_dir:" not in text.replace("# output_dir", "")  # the worker picks it
    assert not any(line.strip().startswith("path: /") for line in text.splitlines())


@pytest.mark.parametrize("path", GPU, ids=lambda p: p.name)
def test_gpu_example_dry_run(path: Path, client, tokens) -> None:  # type: ignore[no-untyped-def]
    request = load_job_file(path)
    assert request.resources.gpus >= 1
    engine = request.rollout.engine if isinstance(request, TrainJobRequest) else request.engine
    assert engine == "vllm"
    r = client.post(
        "/jobs", json=yaml.safe_load(path.read_text()), headers=bearer(tokens["submit"])
    )
    assert r.status_code == 201, r.text
    queue = request.resources.queue
    assert r.json()["warnings"][0].startswith(f"no live worker serves queue {queue}")
    if request.resources.gpus > 1:
        argv = torchrun_command(request.resources.gpus, "trainer.cli", [str(path)])
        assert argv[argv.index("--nproc_per_node") + 1] == str(request.resources.gpus)
