"""Periodic eval inside training: scored through the rollout engine, reported, harmless."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.loop_specs import toy_spec
from trainer.reporting.callbacks import Callback
from trainer.results import BenchmarkResult
from trainer.rl.loop import train
from trainer.spec import PromptConfig


class Recorder(Callback):
    def __init__(self) -> None:
        self.evals: list[tuple[int, Sequence[BenchmarkResult]]] = []
        self.metrics: dict[int, Mapping[str, float]] = {}

    def on_eval(self, step: int, results: Sequence[BenchmarkResult]) -> None:
        self.evals.append((step, results))

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.metrics[step] = metrics


def test_periodic_eval_reports_results_and_metrics_without_changing_training(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    plain = toy_spec(tiny_model_dir, toy_dataset, total_steps=2, checkpoint={"every_steps": 0})
    with_eval = plain.model_copy(
        update={
            "eval": plain.eval.model_copy(
                update={"every_steps": 1, "benchmarks": ["gsm8k"], "k": 1, "max_problems": 2}
            )
        }
    )
    recorder = Recorder()
    evaluated = train(with_eval, output_dir=str(tmp_path / "eval"), callbacks=recorder)
    baseline = train(plain, output_dir=str(tmp_path / "plain"))

    assert [step for step, _ in recorder.evals] == [1, 2]
    for step, results in recorder.evals:
        (result,) = results
        assert isinstance(result, BenchmarkResult)
        assert (result.benchmark, result.k, result.num_problems) == ("gsm8k", 1, 2)
        assert all(p.num_samples == 1 for p in result.per_problem)
        for score, value in result.scores.items():
            assert recorder.metrics[step][f"eval/gsm8k/{score}"] == value
    assert "avg@1" in recorder.evals[0][1][0].scores

    assert evaluated.checkpoint is not None and baseline.checkpoint is not None
    a = load_file(str(Path(evaluated.checkpoint.uri) / "model.safetensors"))
    b = load_file(str(Path(baseline.checkpoint.uri) / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a), "eval changed the training run"
    assert evaluated.metrics["reward/mean"] == baseline.metrics["reward/mean"]


def test_periodic_eval_samples_like_an_eval_job_from_the_train_spec_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It hands the scorer what it needs (sampling, Pass@k, problem cap), no eval spec."""
    from types import SimpleNamespace

    from trainer.engines import SamplingConfig
    from trainer.rl import loop

    calls: list[tuple[str, SamplingConfig, dict[str, object]]] = []

    def scorer(name, sampling, engine, tokenizer, grader, **options):  # type: ignore[no-untyped-def]
        calls.append((name, sampling, options))
        return BenchmarkResult(benchmark=name, k=sampling.n, scores={"avg@3": 0.5}, per_problem=[])

    monkeypatch.setattr(loop, "evaluate_benchmark", scorer)
    spec = toy_spec("model", "data", seed=7)
    spec = spec.model_copy(
        update={"eval": spec.eval.model_copy(update={"benchmarks": ["gsm8k", "amc23"], "k": 3})}
    )
    state = SimpleNamespace(step=2, tokenizer=None, model_path="model")
    recorder = Recorder()
    metrics = loop.periodic_eval(spec, state, engine=None, grader=None, cb=recorder)  # type: ignore[arg-type]

    expected = SamplingConfig(n=3, temperature=0.6, top_p=0.95, max_tokens=6, seed=7)
    options = {
        "pass_ks": [1, 3],
        "max_problems": None,
        "prompt": spec.prompt,
        "answer_format": "lenient",
    }
    assert calls == [("gsm8k", expected, options), ("amc23", expected, options)]
    assert metrics["eval/amc23/avg@3"] == 0.5 and [s for s, _ in recorder.evals] == [2]


def test_periodic_eval_prompts_as_the_train_spec_unless_eval_prompt_is_given(
    echo_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    """The echo model answers the prompt's last token: the train prompt ends in 7, so a set
    whose answers are 7 scores 1 with it and 0 with an eval prompt that ends in 3."""
    from tests.trainer.evaluation.test_eval_sets import write_set

    sevens = {"name": "sevens", "path": write_set(tmp_path / "sevens.jsonl")}
    spec = toy_spec(
        echo_model_dir,
        toy_dataset,
        prompt={"instruction": "7", "use_chat_template": False},
        rollout={"max_response_tokens": 1},
        total_steps=1,
        checkpoint={"every_steps": 0},
        eval={"every_steps": 1, "benchmarks": [sevens], "k": 2},
    )
    own = Recorder()
    train(spec, output_dir=str(tmp_path / "own"), callbacks=own)
    assert own.metrics[1]["eval/sevens/avg@2"] == 1.0
    asks_three = PromptConfig(instruction="3", use_chat_template=False)
    other = Recorder()
    train(
        spec.model_copy(update={"eval": spec.eval.model_copy(update={"prompt": asks_three})}),
        output_dir=str(tmp_path / "other"),
        callbacks=other,
    )
    assert other.metrics[1]["eval/sevens/avg@2"] == 0.0
