"""How many CPU threads each attempt process gets: its slot's share of the cores.

torch (like every OpenMP library) starts one intra-op thread per core in each process.
Two slots of one worker would then run twice as many busy threads as the machine has
cores, and each step slows down more than the cores are shared (measured in
`bench/threads.py`). So every attempt's child is started with `OMP_NUM_THREADS` set to
its share: the cores this process may use divided among the worker's slots, and again
among a torchrun group's ranks, as torchrun itself does when it sets 1 per rank.
"""

import math
import os
from pathlib import Path

THREAD_ENV = "OMP_NUM_THREADS"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota
    (a container started with `--cpus 4` on a 64-core host gets 4, not 64)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


def attempt_threads(*, slots: int, nproc: int, cores: int, override: int | None) -> int:
    """Threads of each process of one attempt: `override` (the operator's
    `DGPO_CHILD_THREADS`) if set, else `cores // slots // nproc`, at least 1."""
    if override is not None:
        return override
    return max(1, cores // slots // max(1, nproc))
