"""`dgpo-eval SPEC.yaml`: run an eval spec standalone, without the service.

The spec file is the same YAML `POST /jobs` accepts (`kind: eval` optional here).
A spec that names a train job's checkpoint needs the service to resolve it; pass
`--model PATH` to evaluate a local directory or hub id instead.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import yaml

from trainer.evaluation.scores import average_scores
from trainer.results import BenchmarkResult
from trainer.spec.eval import EvalSpec
from trainer.spec.jobs import ENVELOPE


def load_eval_spec(path: str | Path) -> EvalSpec:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of eval spec fields")
    if data.pop("kind", "eval") != "eval":
        raise ValueError(f"{path}: kind must be 'eval' for dgpo-eval (use dgpo-train)")
    for envelope_key in ENVELOPE:
        data.pop(envelope_key, None)
    return EvalSpec.model_validate(data)


def _score_order(key: str) -> tuple[bool, int]:
    """avg@k first, then pass@1, pass@2, ... numerically."""
    name, _, k = key.partition("@")
    return name != "avg", int(k) if k.isdigit() else 0


def format_table(results: Sequence[BenchmarkResult]) -> str:
    """One row per benchmark plus their unweighted average, scores in percent."""
    keys = sorted({key for r in results for key in r.scores}, key=_score_order)
    rows = [(r.benchmark, str(r.num_problems), r.scores) for r in results]
    rows.append(("average", "", average_scores([r.scores for r in results])))
    lines = ["\t".join(["benchmark", "problems", *keys])]
    for name, count, scores in rows:
        cells = [f"{100 * scores[k]:.1f}" if k in scores else "-" for k in keys]
        lines.append("\t".join([name, count, *cells]))
    return "\n".join(lines)


def eval_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dgpo-eval", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="eval spec YAML")
    parser.add_argument("--model", help="model directory or hub id (overrides model.path)")
    parser.add_argument("--benchmark-dir", help="local JSONL benchmarks ($DGPO_BENCHMARK_DIR)")
    parser.add_argument("--output", help="write full results (per problem, per sample) as JSON")
    args = parser.parse_args(argv)

    spec = load_eval_spec(args.spec)
    model_path = args.model or spec.model.path
    if model_path is None:
        parser.error("the spec names a checkpoint, which only the service resolves; pass --model")

    from trainer.evaluation.runner import run_eval  # torch only once arguments are valid

    results = run_eval(spec, model_path, benchmark_dir=args.benchmark_dir)
    print(format_table(results))
    if args.output:
        Path(args.output).write_text(json.dumps([asdict(r) for r in results], indent=1))
        print(f"results written to {args.output}", file=sys.stderr)


if __name__ == "__main__":  # `python -m trainer.evaluation.cli SPEC` (the worker's child)
    eval_main()
