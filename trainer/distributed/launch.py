"""The torchrun command line for a multi-process job (the worker starts and supervises it).

    python -m torch.distributed.run --nproc_per_node N --master_addr 127.0.0.1
        --master_port PORT -m trainer.cli SPEC --output DIR [--resume]

torchrun starts N ranks and, with `--max-restarts 0` (its default), stops all of them as
soon as one fails, exiting non-zero: the supervising worker treats the group as one
process (one lease, one heartbeat), kills its process group on cancel, and reports the
first failure, which torchrun prints as "Root Cause (first observed failure)".
"""

import socket
import sys


def free_port() -> int:
    """A TCP port free right now on this host, for the rank-0 rendezvous store."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(
    nproc: int, module: str, args: list[str], *, port: int | None = None
) -> list[str]:
    """argv that runs `python -m module *args` as `nproc` ranks on this host."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1 (got {nproc})")
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port or free_port()),
        "-m",
        module,
        *args,
    ]
