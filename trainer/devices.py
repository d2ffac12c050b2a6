"""The device a training process uses: the GPUs its spec asks for, or a refusal that says why.

A spec with `resources.gpus > 0` on a process where CUDA is unavailable (no GPU in the
slot, or a driver too old for the CUDA that torch was built with) used to train on the
CPU, for days, on a worker that serves a GPU queue. It now raises `GpusUnavailableError`,
which the worker does not retry (`workers.failures.NOT_RETRIED`): every attempt on that
machine would fail the same way.
"""

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CPU_STANDS_IN_ENV = "DGPO_CPU_STANDS_IN_FOR_GPUS"
"""`1`: a job that asks for GPUs runs on the CPU where CUDA is unavailable. For test and
demo workers on CPU-only hosts (tests/workers/conftest.py sets it); never on a GPU fleet."""


class GpusUnavailableError(RuntimeError):
    """The spec asks for GPUs and this process cannot use CUDA."""


def training_device(gpus: int, rank_device: "torch.device | None" = None) -> "torch.device":
    """CUDA when the spec asks for GPUs, else the CPU; `rank_device` is a torchrun rank's
    own device (its GPU, or the CPU under gloo), kept once the request is checked."""
    import torch

    cuda = torch.cuda.is_available()
    if gpus > 0 and not cuda and os.environ.get(CPU_STANDS_IN_ENV) != "1":
        raise GpusUnavailableError(
            f"the job asks for {gpus} GPU(s) but CUDA is unavailable in this process "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}; "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): check that "
            "the worker's container reserves GPUs and that the driver supports that CUDA "
            "version (`nvidia-smi`)"
        )
    if rank_device is not None:
        return rank_device
    return torch.device("cuda" if gpus > 0 and cuda else "cpu")
