"""Math benchmarks: the registry and its loaders."""

from trainer.benchmarks.loaders import (
    BENCHMARK_DIR_ENV,
    benchmark_dir,
    get_benchmark,
    load_benchmark,
    load_eval_set,
    load_hf,
    load_local,
    load_problems,
)
from trainer.benchmarks.registry import BENCHMARKS, GENERATED_BENCHMARKS, Benchmark, Problem

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_DIR_ENV",
    "GENERATED_BENCHMARKS",
    "Benchmark",
    "Problem",
    "benchmark_dir",
    "get_benchmark",
    "load_benchmark",
    "load_eval_set",
    "load_hf",
    "load_local",
    "load_problems",
]
