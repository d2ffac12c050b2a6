"""`dgpo evals compare A B`: per-benchmark score differences between two eval jobs."""

from typing import Annotated, Any

import typer

from dgpo.commands._api import api_client, console, print_json, print_table

app = typer.Typer(help="Compare evaluation runs.", no_args_is_help=True)


@app.command()
def compare(
    job_a: Annotated[str, typer.Argument(help="Baseline eval job id")],
    job_b: Annotated[str, typer.Argument(help="Candidate eval job id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score differences B - A per benchmark, with the bootstrap interval when given."""
    with api_client() as api:
        comparison = api.compare_evals(job_a, job_b)
    rows = _benchmark_rows(comparison)
    if as_json or not rows:
        print_json(comparison)
        return
    print_table([_readable(row) for row in rows], COMPARE_COLUMNS, f"B {job_b}\nvs A {job_a}")
    if "verdict" in comparison:
        console.print(f"verdict: [bold]{comparison['verdict']}[/bold]")


COMPARE_COLUMNS = ("benchmark", "problems", "A", "B", "B - A", "95% CI", "steps A→B", "verdict")


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    """One row per benchmark in words that fit 100 columns; `--json` has every field."""
    low, high = row.get("ci_low"), row.get("ci_high")
    ci = f"[{low:.3g}, {high:.3g}]" if isinstance(low, float) and isinstance(high, float) else ""
    steps = f"{_step(row.get('step_a'))}→{_step(row.get('step_b'))}"
    return {
        "benchmark": row.get("benchmark"),
        "problems": row.get("num_problems"),
        "A": row.get("accuracy_a"),
        "B": row.get("accuracy_b"),
        "B - A": row.get("difference"),
        "95% CI": ci,
        "steps A→B": steps,
        "verdict": row.get("verdict"),
    }


def _step(step: Any) -> str:
    """A checkpoint's step, or `model` for an eval of a model path."""
    return "model" if step is None else str(step)


def _benchmark_rows(comparison: Any) -> list[dict[str, Any]]:
    """The per-benchmark rows, whether listed or keyed by benchmark name."""
    benchmarks = comparison.get("benchmarks") if isinstance(comparison, dict) else None
    if isinstance(benchmarks, list):
        return [_flat(row) for row in benchmarks if isinstance(row, dict)]
    if isinstance(benchmarks, dict):
        return [_flat({"benchmark": name, **row}) for name, row in benchmarks.items()]
    return []


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """Inline one level of nesting (`ci: {low, high}` -> `ci.low`, `ci.high`)."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat
