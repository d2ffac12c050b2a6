"""Load a benchmark's problems: generated, from a local JSONL directory or from the Hugging
Face hub; or a custom eval set's from its JSONL file."""

import json
import os
from pathlib import Path

from trainer.benchmarks.registry import BENCHMARKS, GENERATED_BENCHMARKS, Benchmark, Problem
from trainer.spec.eval import BenchmarkRef, EvalSet

BENCHMARK_DIR_ENV = "DGPO_BENCHMARK_DIR"
PACKAGED_DIR = Path(__file__).resolve().parent / "data"
"""Benchmarks small enough to ship with the package (`Benchmark.packaged`)."""


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        known = sorted([*BENCHMARKS, *GENERATED_BENCHMARKS])
        raise KeyError(f"unknown benchmark {name!r}; known: {known}") from None


def benchmark_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The local data directory: the explicit one, else `$DGPO_BENCHMARK_DIR`, else None."""
    chosen = explicit if explicit is not None else os.environ.get(BENCHMARK_DIR_ENV)
    return Path(chosen) if chosen else None


def load_local(name: str, directory: str | os.PathLike[str]) -> list[Problem]:
    """Read `<directory>/<local_filename>` (JSON Lines of `{"id", "problem", "answer"}`);
    a packaged benchmark is read from the package whatever the directory."""
    bench = get_benchmark(name)
    path = (PACKAGED_DIR if bench.packaged else Path(directory)) / bench.local_filename
    if not path.is_file():
        raise FileNotFoundError(
            f"benchmark {name!r} expects {path}; point {BENCHMARK_DIR_ENV} at a directory "
            f"holding {bench.local_filename}"
        )
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return _checked(bench, [Problem(str(r["id"]), r["problem"], str(r["answer"])) for r in rows])


def load_hf(name: str) -> list[Problem]:
    """Download the benchmark from the Hugging Face hub (needs `datasets` and network)."""
    bench = get_benchmark(name)
    try:
        from datasets import load_dataset
    except ImportError as e:
        raise ImportError(
            f"loading {name!r} from the hub needs `pip install datasets`, or set "
            f"{BENCHMARK_DIR_ENV} to a directory of local JSONL files"
        ) from e
    rows = load_dataset(
        bench.hf_dataset_id, bench.hf_config, split=bench.hf_split, revision=bench.hf_revision
    )
    problems = [
        Problem(
            id=str(row[bench.id_field]) if bench.id_field else f"{name}-{i}",
            problem=str(row[bench.problem_field]),
            answer=bench.normalize_answer(row[bench.answer_field]),
        )
        for i, row in enumerate(rows)
    ]
    return _checked(bench, problems)


def load_eval_set(eval_set: EvalSet) -> list[Problem]:
    """A custom eval set's rows `{"problem", "answer"}` (`"id"` optional: `<name>-<row>`)."""
    path = Path(eval_set.path)
    if not path.is_file():
        raise FileNotFoundError(f"eval set {eval_set.name!r}: {path} does not exist")
    problems = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate((line for line in f if line.strip()), start=1):
            row = json.loads(line)
            if not isinstance(row, dict) or "problem" not in row or "answer" not in row:
                raise ValueError(
                    f"eval set {eval_set.name!r}: row {number} of {path} needs "
                    '"problem" and "answer" fields'
                )
            problem_id = str(row.get("id", f"{eval_set.name}-{number - 1}"))
            problems.append(Problem(problem_id, str(row["problem"]), str(row["answer"])))
    if not problems:
        raise ValueError(f"eval set {eval_set.name!r}: {path} has no rows")
    return problems


def load_problems(
    ref: BenchmarkRef, directory: str | os.PathLike[str] | None = None
) -> list[Problem]:
    """A built-in benchmark's problems (`load_benchmark`) or a custom eval set's."""
    return load_eval_set(ref) if isinstance(ref, EvalSet) else load_benchmark(ref, directory)


def load_benchmark(name: str, directory: str | os.PathLike[str] | None = None) -> list[Problem]:
    """Generated; packaged or local JSONL when a directory is given or configured; the hub
    otherwise."""
    if name in GENERATED_BENCHMARKS:
        return GENERATED_BENCHMARKS[name]()
    local = PACKAGED_DIR if get_benchmark(name).packaged else benchmark_dir(directory)
    return load_local(name, local) if local is not None else load_hf(name)


def _checked(bench: Benchmark, problems: list[Problem]) -> list[Problem]:
    if len(problems) != bench.expected_size:
        raise ValueError(
            f"benchmark {bench.name!r} has {len(problems)} problems, expected "
            f"{bench.expected_size}; the data source changed or is truncated"
        )
    return problems
