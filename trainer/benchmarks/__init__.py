"""Math benchmarks: the registry and its loaders."""

from trainer.benchmarks.loaders import (
    BENCHMARK_DIR_ENV,
    benchmark_dir,
    get_benchmark,
    load_benchmark,
    load_hf,
    load_local,
)
from trainer.benchmarks.registry import BENCHMARKS, Benchmark, Problem

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_DIR_ENV",
    "Benchmark",
    "Problem",
    "benchmark_dir",
    "get_benchmark",
    "load_benchmark",
    "load_hf",
    "load_local",
]
