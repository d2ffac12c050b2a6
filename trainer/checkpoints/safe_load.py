"""Reading checkpoint files as plain data: a planted pickle is refused, never run.

A checkpoint's manifest proves its files are the ones listed, not who wrote them:
anyone who can put files into a run directory can write a matching manifest. So every
pickled file a resume reads is loaded without executing code: `trainer_state.pt` with
`torch.load(weights_only=True)` (tensors, numbers, strings, lists, tuples and dicts
only), and a sharded optimizer's `torch.distributed.checkpoint` directory through a
reader whose metadata unpickler knows only DCP's own record types, and a planner that
loads its byte items with `weights_only=True` (DCP itself uses plain `pickle`).
"""

import io
import pickle
from pathlib import Path, PosixPath, PurePosixPath
from typing import IO, Any

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint import filesystem as dcp_filesystem
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.planner import ReadItem

_REFUSED = (
    "{what} holds objects other than plain data ({why}); refusing to load it: "
    "a checkpoint this trainer wrote never does, so it was tampered with"
)

_DCP_TYPES: dict[tuple[str, str], Any] = {
    **{
        (dcp_metadata.__name__, name): getattr(dcp_metadata, name)
        for name in (
            "ChunkStorageMetadata",
            "TensorProperties",
            "TensorStorageMetadata",
            "BytesStorageMetadata",
            "StorageMeta",
            "Metadata",
            "MetadataIndex",
            "_MEM_FORMAT_ENCODING",
        )
    },
    **{
        (dcp_filesystem.__name__, name): getattr(dcp_filesystem, name)
        for name in ("_StorageInfo", "_StoragePrefix", "SerializationFormat")
    },
    ("pathlib", "PosixPath"): PosixPath,
    ("pathlib", "PurePosixPath"): PurePosixPath,
    ("torch", "Size"): torch.Size,
    ("torch.serialization", "_get_layout"): torch.serialization._get_layout,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
}
"""Every global a DCP `.metadata` pickle names (plus `torch.<dtype>`, checked apart)."""


def load_plain(source: str | Path | IO[bytes], what: str) -> Any:
    """`torch.load` of plain data only; `what` names the file in the error."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(_REFUSED.format(what=what, why=_first_line(exc))) from None


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _DCP_TYPES.get((module, name))
        if (
            found is None
            and module == "torch"
            and isinstance(getattr(torch, name, None), torch.dtype)
        ):
            found = getattr(torch, name)
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not a checkpoint record type")
        return found


class PlainDataReader(FileSystemReader):
    """`FileSystemReader` whose metadata unpickler accepts DCP's record types only."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> dcp_metadata.Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as stream:
            try:
                metadata = _MetadataUnpickler(stream).load()
            except pickle.UnpicklingError as exc:
                what = f"{self.path}/.metadata"
                raise pickle.UnpicklingError(_REFUSED.format(what=what, why=exc)) from None
        if not isinstance(metadata, dcp_metadata.Metadata):
            raise pickle.UnpicklingError(_REFUSED.format(what=path, why="not DCP metadata"))
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = dcp_metadata.StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class PlainDataPlanner(DefaultLoadPlanner):
    """`DefaultLoadPlanner` that loads non-tensor items with `weights_only=True`."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        obj = load_plain(value, f"optimizer item {read_item.dest_index.fqn}")
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def _first_line(exc: Exception) -> str:
    """The line of torch's message naming the refused global (not its advice to retry
    with `weights_only=False`, which is exactly what must not happen here)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    return next((line for line in lines if "Unsupported global" in line), "unsupported pickle")
