"""Each attempt's share of the cores (pure functions; the child's view is proven in
test_supervisor.py with a real 2-slot worker)."""

import os
from pathlib import Path

import pytest

from workers import cpus


def test_the_cores_are_divided_among_slots_and_ranks_at_least_one_each() -> None:
    assert cpus.attempt_threads(slots=1, nproc=1, cores=16, override=None) == 16
    assert cpus.attempt_threads(slots=4, nproc=1, cores=16, override=None) == 4
    assert cpus.attempt_threads(slots=2, nproc=4, cores=16, override=None) == 2
    assert cpus.attempt_threads(slots=3, nproc=1, cores=2, override=None) == 1


def test_the_operators_setting_wins() -> None:
    assert cpus.attempt_threads(slots=4, nproc=2, cores=16, override=6) == 6


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", None), ("150000 100000", 2), ("50000 100000", 1), ("garbage", None)],
)
def test_a_cgroup_cpu_quota_caps_the_cores(
    cpu_max: str, expected: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker run --cpus 1.5` writes `150000 100000`: 2 cores' worth of threads at most."""
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text(cpu_max + "\n")
    monkeypatch.setattr(cpus, "CGROUP_CPU_MAX", quota)
    assert cpus.available_cores() == (affinity if expected is None else min(affinity, expected))
    monkeypatch.setattr(cpus, "CGROUP_CPU_MAX", tmp_path / "absent")
    assert cpus.available_cores() == affinity
