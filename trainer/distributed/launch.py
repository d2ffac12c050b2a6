"""The torchrun command line for a multi-process job (the worker starts and supervises it).

    python -m torch.distributed.run --standalone --nproc_per_node N
        -m trainer.cli SPEC --output DIR [--resume]

`--standalone` (torchrun's documented single-node form) starts a c10d rendezvous store on
`localhost:0`: the OS gives torchrun a free port as it binds, so slots starting groups on
one host at once cannot race for a port picked beforehand (as a `--master_port` would).
torchrun starts N ranks and, with `--max-restarts 0` (its default), stops all of them as
soon as one fails, exiting non-zero: the supervising worker treats the group as one
process (one lease, one heartbeat), kills its process group on cancel, and reports the
first failure, which torchrun prints as "Root Cause (first observed failure)".
"""

import sys


def torchrun_command(nproc: int, module: str, args: list[str]) -> list[str]:
    """argv that runs `python -m module *args` as `nproc` ranks on this host."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1 (got {nproc})")
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        module,
        *args,
    ]
