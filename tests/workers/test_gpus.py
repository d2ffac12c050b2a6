"""GPU inventory naming and slot pinning (pure functions; no GPU needed)."""

import pytest

from workers.gpus import gpu_family, slot_devices
from workers.routing import queues_for, serves_jobs


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA A100-SXM4-40GB", "a100"),
        ("NVIDIA L40S", "l40s"),
        ("Tesla T4", "t4"),
        ("NVIDIA GeForce RTX 4090", "geforce"),
    ],
)
def test_gpu_names_map_to_the_queue_suffix(name: str, family: str) -> None:
    assert gpu_family(name) == family


def test_each_slot_gets_a_disjoint_equal_share_of_the_gpus() -> None:
    devices = [str(i) for i in range(8)]
    shares = [slot_devices(slot, 4, devices) for slot in range(4)]
    assert shares == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"]]
    assert slot_devices(0, 1, devices) == devices
    assert slot_devices(0, 3, []) == []


def test_more_slots_than_gpus_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="at most one slot per GPU"):
        slot_devices(0, 3, ["0", "1"])


def test_workers_consume_their_type_queue_and_gpu_any_or_cpu() -> None:
    assert queues_for("h100") == ["gpu.h100", "gpu.any"]
    assert queues_for("cpu") == ["cpu"]
    assert serves_jobs(["gpu.any"]) and not serves_jobs(["dgpo.maintenance"])
