"""End to end on CPU: the tiny model answers a slice of two benchmarks, graded and scored."""

import json
from pathlib import Path

import pytest
import yaml

from trainer.evaluation.cli import eval_main
from trainer.evaluation.runner import run_eval
from trainer.spec.eval import EvalSpec


def spec_for(model: str, **overrides: object) -> EvalSpec:
    fields = {
        "model": {"path": model},
        "benchmarks": ["math500", "amc23"],
        "k": 2,
        "max_tokens": 8,
        "max_problems": 2,
        "pass_k": [1, 2],
        **overrides,
    }
    return EvalSpec.model_validate(fields)


def test_run_eval_scores_a_slice_of_two_benchmarks(tiny_model_dir: str) -> None:
    results = run_eval(spec_for(tiny_model_dir), tiny_model_dir)
    assert [r.benchmark for r in results] == ["math500", "amc23"]
    for result in results:
        assert result.k == 2 and result.num_problems == 2
        assert set(result.scores) == {"avg@2", "pass@1", "pass@2"}
        for problem in result.per_problem:
            assert problem.num_samples == len(problem.samples) == 2
            assert problem.num_correct == sum(s.correct for s in problem.samples)
        # A random-init model answers nothing right; scores still follow the counts.
        correct = sum(p.num_correct for p in result.per_problem)
        assert result.scores["avg@2"] == pytest.approx(correct / 4)
    assert results[0].per_problem[0].problem_id == "test/precalculus/807.json"


def test_same_seed_gives_the_same_samples(tiny_model_dir: str) -> None:
    spec = spec_for(tiny_model_dir, benchmarks=["amc23"], max_problems=1)
    first, second = (run_eval(spec, tiny_model_dir) for _ in range(2))
    assert first == second


def test_dgpo_eval_cli_prints_scores_and_writes_results(
    tiny_model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "eval.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {"kind": "eval", "model": {"path": tiny_model_dir}, "benchmarks": ["amc23"], "k": 2,
             "max_tokens": 4, "max_problems": 1, "metadata": {"team": "x"}}
        )
    )  # fmt: skip
    out = tmp_path / "results.json"
    eval_main([str(spec_file), "--output", str(out)])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split("\t") == ["benchmark", "problems", "avg@2", "pass@1", "pass@2"]
    assert table[1].startswith("amc23\t1\t") and table[2].startswith("average")
    (saved,) = json.loads(out.read_text())
    assert saved["benchmark"] == "amc23" and len(saved["per_problem"][0]["samples"]) == 2
