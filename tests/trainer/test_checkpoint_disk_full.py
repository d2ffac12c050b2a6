"""A full disk: the checkpoint fails saying so, and leaves no half-written directory.

A real small file system (a 256 KiB tmpfs, mounted for the test; it needs root, which
the CI container has) fills up mid-write; nothing is simulated.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.checkpoints.local import list_checkpoints, save_checkpoint


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.decode()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_says_no_space_left_and_leaves_no_temporary_directory(
    tiny_model_dir: str, tiny_disk: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(OSError, match="no space left on device"):
        save_checkpoint(tiny_disk / "run", 1, model, tokenizer, {"step": 1}, keep_last=1)
    assert list((tiny_disk / "run").iterdir()) == []  # no .tmp-step-*, no step-*
    assert list_checkpoints(tiny_disk / "run") == []
