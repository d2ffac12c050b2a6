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

A job on several nodes (`Rendezvous`) runs one such torchrun per node, joined by the c10d
rendezvous that member 0 hosts (`--rdzv-conf is_host`: said explicitly, since two members
on one host would both take themselves for the host of an endpoint naming it). The
rendezvous id is the attempt's, so a retry never joins what is left of the last one. c10d
gives each node its group rank in the order of the nodes' (host name, agent pid), not by
member: global rank 0 may run on any member (`docs/distributed.md`).
"""

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Rendezvous:
    """Where the nodes of one attempt meet."""

    nodes: int
    endpoint: str
    """`host:port` of member 0's c10d store."""
    run_id: str
    is_host: bool
    join_timeout_s: float
    """How long torchrun waits for all nodes before `RendezvousTimeoutError`."""

    def args(self) -> list[str]:
        conf = f"is_host={int(self.is_host)},join_timeout={self.join_timeout_s:g}"
        return [
            "--nnodes", str(self.nodes),
            "--rdzv-backend", "c10d",
            "--rdzv-endpoint", self.endpoint,
            "--rdzv-id", self.run_id,
            "--rdzv-conf", conf,
        ]  # fmt: skip


def torchrun_command(
    nproc: int, module: str, args: list[str], rendezvous: Rendezvous | None = None
) -> list[str]:
    """argv that runs `python -m module *args` as `nproc` ranks on this host (this node's
    share of a multi-node group given `rendezvous`)."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1 (got {nproc})")
    how = ["--standalone"] if rendezvous is None else rendezvous.args()
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *how,
        "--nproc_per_node",
        str(nproc),
        "-m",
        module,
        *args,
    ]
