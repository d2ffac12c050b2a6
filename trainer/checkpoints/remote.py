"""Checkpoints under an fsspec URI (`s3://`, `gs://`, `memory://`, ...).

Each checkpoint is written locally first (atomically, with its manifest, by
`trainer.checkpoints.local`), then uploaded file by file with the manifest LAST: a remote
directory without a manifest, or whose files do not match it, is an interrupted upload
and is never resumed from. Resuming downloads the newest valid one into the local
staging directory, which is also what the model is loaded from.
"""

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoints.local import (
    MANIFEST,
    PREFIX,
    Checkpoint,
    save_checkpoint,
    verify_checkpoint,
)


def is_remote(uri: str | Path) -> bool:
    """True for fsspec URIs other than plain local paths (`file://` counts as remote too)."""
    return "://" in str(uri)


def staging_dir(uri: str) -> Path:
    """Local mirror of `uri`: the same URI always maps to the same directory."""
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "dgpo-checkpoints" / digest


def save_remote(
    uri: str,
    step: int,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    *,
    keep_last: int,
    extra: Callable[[Path], object] | None = None,
    compute_dtype: torch.dtype | None = None,
) -> Checkpoint:
    """Save locally (arguments as `save_checkpoint`), upload manifest-last, then prune
    remote copies beyond `keep_last`."""
    local = save_checkpoint(
        staging_dir(uri),
        step,
        model,
        tokenizer,
        trainer_state,
        keep_last=keep_last,
        extra=extra,
        compute_dtype=compute_dtype,
    )
    fs, root = _fs(uri)
    dest = f"{root}/{local.path.name}"
    if fs.exists(dest):  # a re-run of the same step: invalidate first, then replace
        _remove(fs, dest)
    for rel in local.info.files:
        fs.makedirs(f"{dest}/{Path(rel).parent}".rstrip("/."), exist_ok=True)
        fs.put_file(str(local.path / rel), f"{dest}/{rel}")
    fs.put_file(str(local.path / MANIFEST), f"{dest}/{MANIFEST}")
    for old in _remote_checkpoints(fs, root)[:-keep_last]:
        _remove(fs, old)
    return Checkpoint(local.path, replace(local.info, uri=_child(uri, local.path.name)))


def latest_valid_remote(uri: str) -> tuple[Checkpoint | None, list[str]]:
    """(newest remote checkpoint that passes its manifest once downloaded, newer ones
    that failed it); the returned checkpoint's `path` is its local copy."""
    fs, root = _fs(uri)
    rejected = []
    for remote in reversed(_remote_checkpoints(fs, root)):
        name = remote.rsplit("/", 1)[-1]
        local = _download(fs, remote, staging_dir(uri) / name)
        checkpoint = verify_checkpoint(local) if local is not None else None
        if checkpoint is not None:
            return Checkpoint(local, replace(checkpoint.info, uri=_child(uri, name))), rejected
        rejected.append(_child(uri, name))
    return None, rejected


def _child(uri: str, name: str) -> str:
    return f"{uri.rstrip('/')}/{name}"


def _fs(uri: str) -> tuple[Any, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri.rstrip("/"))
    return fs, root.rstrip("/")


def _remote_checkpoints(fs: Any, root: str) -> list[str]:
    if not fs.exists(root):
        return []
    found = [p.rstrip("/") for p in fs.ls(root, detail=False)]
    return sorted(p for p in found if p.rsplit("/", 1)[-1].startswith(PREFIX))


def _download(fs: Any, remote: str, local: Path) -> Path | None:
    """Copy `remote` to `local` (skipped when an identical copy is there already);
    None when it has no manifest, i.e. its upload never finished."""
    try:
        manifest = fs.cat_file(f"{remote}/{MANIFEST}")
    except FileNotFoundError:
        return None
    if (local / MANIFEST).is_file() and (local / MANIFEST).read_bytes() == manifest:
        return local
    tmp = local.parent / f".download-{local.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    for path in fs.find(remote):
        target = tmp / path[len(remote) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(target))
    shutil.rmtree(local, ignore_errors=True)
    tmp.rename(local)
    return local


def _remove(fs: Any, remote: str) -> None:
    """Manifest first, so a removal cut short leaves an invalid (ignored) checkpoint."""
    if fs.exists(f"{remote}/{MANIFEST}"):
        fs.rm(f"{remote}/{MANIFEST}")
    fs.rm(remote, recursive=True)
