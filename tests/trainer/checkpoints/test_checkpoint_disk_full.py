"""A full disk: the checkpoint fails saying so, and leaves no half-written directory;
a new attempt removes what an earlier one killed mid-write left.

A real small file system (a 256 KiB tmpfs, mounted for the test; it needs root, which
the CI container has) fills up mid-write; nothing is simulated.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.loop_specs import toy_spec
from trainer.checkpoints import DISK_FULL
from trainer.checkpoints.local import list_checkpoints, save_checkpoint
from trainer.rl.loop import train


def mount_tmpfs(disk: Path, size: str) -> Iterator[Path]:
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.decode()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)  # torch may hold a file


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "disk", "256k")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """3 MiB: the model's weights fit, a 4 MB trainer state does not."""
    yield from mount_tmpfs(tmp_path / "disk", "3m")


def test_a_full_disk_says_no_space_left_and_leaves_no_temporary_directory(
    tiny_model_dir: str, tiny_disk: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(OSError, match="no space left on device"):
        save_checkpoint(tiny_disk / "run", 1, model, tokenizer, {"step": 1}, keep_last=1)
    assert list((tiny_disk / "run").iterdir()) == []  # no .tmp-step-*, no step-*
    assert list_checkpoints(tiny_disk / "run") == []


def test_a_trainer_state_that_does_not_fit_says_no_space_left(
    tiny_model_dir: str, small_disk: Path
) -> None:
    """torch's zip writer does not say ENOSPC: "unexpected pos 176896 vs 176788" (issue 24)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    state = {"step": 1, "optimizer": torch.zeros(1_000_000)}
    with pytest.raises(OSError, match=f"{DISK_FULL} step 1 under .*checkpoint.keep_last"):
        save_checkpoint(small_disk / "run", 1, model, tokenizer, state, keep_last=1)
    assert list((small_disk / "run").iterdir()) == []


def test_a_resumed_run_removes_what_killed_writers_left(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    for stale in (".tmp-step-00000002-4242", ".tmp-step-00000004-4343"):
        (out / stale).mkdir(parents=True)
        (out / stale / "model.safetensors").write_bytes(b"0" * 4096)
    spec = toy_spec(tiny_model_dir, toy_dataset, total_steps=1, checkpoint={"every_steps": 1})
    train(spec, output_dir=str(out), resume=True)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert [p.name for p in list_checkpoints(out)] == ["step-00000001"]
