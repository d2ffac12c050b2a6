"""FSDP2 on CPU/gloo with 2 ranks matches one plain process, and checkpoints cross over."""

import subprocess
from pathlib import Path

import pytest
import torch

from tests.distributed import harness
from trainer.distributed.launch import torchrun_command

TIMEOUT_S = 120


def _torchrun(model_dir: str, out: Path, mode: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = torchrun_command(2, "tests.distributed.harness", [model_dir, str(out), mode])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return torch.load(out / "dump.pt", weights_only=False)


def _in_process(model_dir: str, out: Path, mode: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    harness.run(model_dir, str(out), mode)
    return torch.load(out / "dump.pt", weights_only=False)


@pytest.fixture(scope="module")
def runs(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("fsdp")
    return {
        "one": _in_process(tiny_model_dir, root / "one", "update"),
        "two": _torchrun(tiny_model_dir, root / "two", "update"),
        "root": root,  # type: ignore[dict-item]
    }


def _assert_same(a: dict, b: dict, atol: float) -> None:
    assert set(a["params"]) == set(b["params"])
    for name in a["params"]:
        torch.testing.assert_close(a["params"][name], b["params"][name], atol=atol, rtol=0)
    assert set(a["optim"]) == set(b["optim"])
    for name, state in a["optim"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[key], b["optim"][name][key], atol=atol, rtol=1e-4)


def test_two_process_update_matches_one_process(runs: dict) -> None:
    one, two = runs["one"], runs["two"]
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    _assert_same(one, two, atol=2e-4)  # Adam at lr 1e-2 amplifies fp32 summation order


def test_two_process_checkpoint_resumes_in_one_process(runs: dict, tiny_model_dir: str) -> None:
    root = runs["root"]
    assert list((root / "two" / "ckpt").glob("step-*/optimizer/.metadata")), "no DCP shards"
    resumed = _in_process(tiny_model_dir, root / "two_to_one", str(root / "two" / "ckpt"))
    _assert_same(runs["two"], resumed, atol=0)


def test_one_process_checkpoint_resumes_in_two_processes(runs: dict, tiny_model_dir: str) -> None:
    root = runs["root"]
    resumed = _torchrun(tiny_model_dir, root / "one_to_two", str(root / "one" / "ckpt"))
    _assert_same(runs["one"], resumed, atol=0)
