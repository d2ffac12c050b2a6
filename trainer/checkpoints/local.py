"""Checkpoints: an HF model directory plus the trainer state, written atomically.

Layout: `<root>/step-00000010/` holds `model.safetensors`, `config.json`, the tokenizer
files (so `from_pretrained` and vLLM load it directly), `trainer_state.pt` (optimizer,
scheduler, RNG states, data cursor, step: plain data, loaded with `weights_only=True`)
and `manifest.json` (sha256 of every other file). A checkpoint is written into a hidden
temporary directory and renamed into place only after its manifest is on disk, so a
crash leaves either nothing or a complete checkpoint; one whose files do not match its
manifest is never resumed from.

The weights are the policy's parameters as trained: the fp32 master weights of a bf16 run,
not a bf16 copy, since a resume from a rounded copy undoes every update smaller than a
bf16 step (after 3 steps at lr 1e-6, 96.6% of the weights came back at their pre-training
values).
`config.json` names the compute dtype, so vLLM and `from_pretrained(dtype="auto")` load
the checkpoint in the dtype the run sampled in. This is what HF Trainer (and TRL on it)
saves under mixed precision, and what verl's HF export holds (fp32 tensors in a model
declared bf16); verl resumes from its per-rank fp32 shards instead, which would give this
directory a second copy of the weights. The price: a bf16 run's weights take 4 bytes
per parameter on disk (and on a hub push), beside the 8 of the AdamW moments.
"""

import copy
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.checkpoints import DISK_FULL
from trainer.checkpoints.safe_load import load_plain
from trainer.reporting.callbacks import CheckpointInfo

PREFIX = "step-"
ZIP_SLACK = 1 << 20
"""Free bytes under which a failed torch zip write is taken for a full disk."""
MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.pt"
FORMAT_VERSION = 2
"""2: the trainer state is plain data (RNG states without numpy objects)."""


class NonFiniteModelError(RuntimeError):
    """The model holds NaN/inf parameters; saving it would poison every resume."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    info: CheckpointInfo


def checkpoint_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"{PREFIX}{step:08d}"


def model_is_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def save_checkpoint(
    root: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    *,
    keep_last: int,
    extra: Callable[[Path], object] | None = None,
    compute_dtype: torch.dtype | None = None,
) -> Checkpoint:
    """Write checkpoint `step` atomically, then delete all but the newest `keep_last`.

    `extra(tmp)` may add files (e.g. a sharded optimizer) before the manifest is taken.
    `compute_dtype`: what `config.json` declares when it differs from the weights' (the
    compute dtype of a run with fp32 masters); the weights are written as they are.
    """
    if not model_is_finite(model):
        raise NonFiniteModelError(f"step {step}: the model has non-finite parameters")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{PREFIX}{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        files, manifest = _write(tmp, step, model, tokenizer, trainer_state, extra, compute_dtype)
    except Exception as exc:  # a half-written checkpoint must not hold the disk
        full = _out_of_space(exc, root)  # before the cleanup frees the space again
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise OSError(
                errno.ENOSPC,
                f"{DISK_FULL} step {step} under {root}; "
                "free space there or lower checkpoint.keep_last, then resume",
            ) from exc
        raise
    final = checkpoint_dir(root, step)
    if final.exists():  # a re-run of the same step (e.g. after a crash) replaces it
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync(root)
    _prune(root, keep_last)
    return Checkpoint(final, _info(final, step, manifest, files))


def _write(
    tmp: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    extra: Callable[[Path], object] | None,
    compute_dtype: torch.dtype | None,
) -> tuple[dict[str, str], str]:
    """Every file of the checkpoint, then its manifest, flushed to disk in `tmp`."""
    _save_model(model, tmp, compute_dtype)
    tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / TRAINER_STATE)
    if extra is not None:
        extra(tmp)
    files = {rel: _sha256(tmp / rel) for rel in _relative_files(tmp)}
    manifest = json.dumps({"format": FORMAT_VERSION, "step": step, "files": files}, indent=1)
    (tmp / MANIFEST).write_text(manifest)
    for rel in [*files, MANIFEST]:
        _fsync(tmp / rel)
    return files, manifest


def _out_of_space(exc: BaseException, root: Path) -> bool:
    """ENOSPC anywhere in the chain; safetensors reports it as text ("StorageFull"), and
    torch's zip writer as a position mismatch ("unexpected pos 176896 vs 176788", its
    stream having failed silently), which is a full disk when the disk is now full."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left" in str(exc) or "StorageFull" in str(exc):
            return True
        if "unexpected pos" in str(exc):
            disk = os.statvfs(root)
            return disk.f_bavail * disk.f_frsize < ZIP_SLACK
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _save_model(model: Any, out: Path, compute_dtype: torch.dtype | None) -> None:
    """HF format, every weight as held; `config.json` declares `compute_dtype` if given."""
    model.save_pretrained(out, safe_serialization=True)
    if compute_dtype is not None:
        config = copy.deepcopy(model.config)
        config.dtype = compute_dtype
        config.save_pretrained(out)


def verify_checkpoint(path: str | Path) -> Checkpoint | None:
    """The checkpoint at `path` if every file matches its manifest, else None."""
    path = Path(path)
    try:
        manifest = (path / MANIFEST).read_text()
        data = json.loads(manifest)
        files: dict[str, str] = data["files"]
        if TRAINER_STATE not in files or set(_relative_files(path)) != set(files):
            return None
        if any(_sha256(path / rel) != digest for rel, digest in files.items()):
            return None
        return Checkpoint(path, _info(path, int(data["step"]), manifest, files))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint directories under `root`, oldest first (unverified)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=lambda p: p.name)


def latest_valid_checkpoint(root: str | Path) -> tuple[Checkpoint | None, list[Path]]:
    """(newest checkpoint that passes its manifest, newer ones that failed it)."""
    rejected = []
    for path in reversed(list_checkpoints(root)):
        checkpoint = verify_checkpoint(path)
        if checkpoint is not None:
            return checkpoint, rejected
        rejected.append(path)
    return None, rejected


def load_trainer_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """Plain data only (see `trainer.checkpoints.safe_load`): the manifest proves integrity,
    not origin."""
    path = checkpoint.path / TRAINER_STATE
    state = load_plain(path, str(path))
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a trainer state (a dict); resume from another checkpoint")
    return state


def _prune(root: Path, keep_last: int) -> None:
    for path in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def remove_partial_checkpoints(root: str | Path) -> list[Path]:
    """Delete every `.tmp-step-*` left under `root` by a killed writer; call it before a
    run writes there, when no other writer can be (the lease and the fence see to that).
    A checkpoint of a 7B model is tens of GB: a kill mid-write must not keep it forever."""
    root = Path(root)
    stale = sorted(root.glob(f".tmp-{PREFIX}*")) if root.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _info(path: Path, step: int, manifest: str, files: dict[str, str]) -> CheckpointInfo:
    size = sum((path / rel).stat().st_size for rel in files) + len(manifest.encode())
    return CheckpointInfo(
        step=step,
        uri=str(path.resolve()),
        sha256=hashlib.sha256(manifest.encode()).hexdigest(),
        size_bytes=size,
        files=files,
    )


def _relative_files(directory: Path) -> list[str]:
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
