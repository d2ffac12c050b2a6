"""What accelerators this machine has, and which of them each pool slot may use.

Detection prefers `nvidia-smi` so the parent worker process never initialises CUDA
(a CUDA context does not survive `fork`); `torch.cuda` is the fallback.
"""

import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInventory:
    gpu_type: str
    """Short lower-case family (`h100`, `a100`, ...) or `cpu` when there is no GPU."""
    count: int
    memory_mb: int
    """Memory of one device."""
    names: tuple[str, ...] = ()


CPU = GpuInventory(gpu_type="cpu", count=0, memory_mb=0)
_KNOWN = ("h200", "h100", "a100", "a10g", "a10", "l40s", "l40", "l4", "v100", "t4", "b200")


def gpu_family(name: str) -> str:
    """`NVIDIA H100 80GB HBM3` -> `h100`: the suffix of the `gpu.<type>` queue."""
    lowered = name.lower()
    for family in _KNOWN:
        if family in lowered.replace(" ", "").replace("-", ""):
            return family
    words = [w for w in lowered.replace("nvidia", "").split() if w.isalnum()]
    return words[0] if words else "unknown"


def _from_nvidia_smi() -> GpuInventory | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.rsplit(",", 1) for line in out.strip().splitlines() if "," in line]
    if not rows:
        return None
    names = tuple(name.strip() for name, _ in rows)
    return GpuInventory(gpu_family(names[0]), len(rows), int(float(rows[0][1])), names)


def _from_torch() -> GpuInventory | None:
    try:
        import torch
    except ImportError:
        return None
    count = torch.cuda.device_count()
    if count == 0:
        return None
    props = torch.cuda.get_device_properties(0)
    names = tuple(torch.cuda.get_device_name(i) for i in range(count))
    return GpuInventory(gpu_family(names[0]), count, props.total_memory // 2**20, names)


def detect() -> GpuInventory:
    return _from_nvidia_smi() or _from_torch() or CPU


def slot_devices(slot: int, slots: int, devices: list[str]) -> list[str]:
    """The GPUs pool slot `slot` of `slots` owns: an equal, disjoint share of `devices`."""
    if not devices:
        return []
    if slots > len(devices):
        raise ValueError(
            f"--slots {slots} exceeds the {len(devices)} GPUs visible to this worker; "
            "use at most one slot per GPU"
        )
    per_slot = len(devices) // slots
    return devices[slot * per_slot : (slot + 1) * per_slot]
