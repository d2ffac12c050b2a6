"""Where tests find the shared benchmark files (`$DGPO_BENCHMARK_DIR`, else ../shared)."""

import os
from pathlib import Path

from trainer.benchmarks import BENCHMARK_DIR_ENV

_REPO = Path(__file__).resolve().parents[2]
SHARED_BENCHMARKS = Path(os.environ.get(BENCHMARK_DIR_ENV) or _REPO / "../shared/benchmarks")
