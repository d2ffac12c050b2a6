"""Loop tests that tell a correct update from four plausible bugs: old log-probs taken at
T = 1 whatever the rollout temperature, old log-probs taken from the rollout engine instead
of recomputed by the trainer, EOS dropped from the response mask, and per-micro-batch
normalisation. Each was applied to the code and seen to fail its test here.

The model is the tiny one with its EOS logit raised, so responses end at varied lengths."""

from pathlib import Path

import pytest

from tests.trainer.loop_specs import eos_prone_copy, toy_spec
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train


@pytest.fixture(scope="module")
def eos_prone_model(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return eos_prone_copy(tiny_model_dir, tmp_path_factory.mktemp("eos_prone"))


class Last(Callback):
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def on_step_end(self, step: int, metrics) -> None:  # type: ignore[no-untyped-def]
        self.metrics = dict(metrics)


def one_step(model: str, data: str, out: Path, **overrides) -> dict[str, float]:  # type: ignore[no-untyped-def]
    spec = toy_spec(
        model,
        data,
        rollout={
            "max_prompt_tokens": 64,
            "max_response_tokens": 12,
            **overrides.pop("rollout", {}),
        },
        total_steps=1,
        checkpoint={"every_steps": 0},
        **overrides,
    )
    last = Last()
    train(spec, output_dir=str(out), callbacks=last, resume=False)
    return last.metrics


def test_old_logprobs_use_the_rollout_temperature(
    eos_prone_model: str, toy_dataset: str, tmp_path: Path
) -> None:
    """The engine's log-probs are at the sampling temperature; the trainer's π_old must be too
    (same weights before the update, so they agree to float rounding)."""
    metrics = one_step(eos_prone_model, toy_dataset, tmp_path, rollout={"temperature": 0.6})
    assert metrics["rollout/logprob_abs_diff"] < 1e-4


def test_old_logprobs_are_the_trainers_own_not_the_engines(
    eos_prone_model: str, toy_dataset: str, tmp_path: Path
) -> None:
    """The engine's log-probs differ from the trainer's by rounding (cached decoding, not
    one full forward; with vLLM, another kernel). π_old is the trainer's own forward on the
    same weights, so the first update of a step starts at r = π/π_old = 1 exactly."""
    metrics = one_step(eos_prone_model, toy_dataset, tmp_path)
    assert metrics["rollout/logprob_abs_diff"] > 0
    assert metrics["ratio/max"] == 1.0 and metrics["ratio/mean"] == 1.0


def test_every_response_token_including_eos_is_trained(
    eos_prone_model: str, toy_dataset: str, tmp_path: Path
) -> None:
    metrics = one_step(eos_prone_model, toy_dataset, tmp_path)
    samples = 4 * 8
    assert metrics["response/truncated_frac"] < 0.9  # many responses stopped with EOS
    assert metrics["loss/tokens"] == pytest.approx(metrics["response/length_mean"] * samples)


def test_micro_batching_does_not_change_the_update(
    eos_prone_model: str, toy_dataset: str, tmp_path: Path
) -> None:
    """Same rollouts, micro-batches of 4 or the whole mini-batch of 32: the same loss and
    gradient (the normaliser is the optimizer step's, not each micro-batch's)."""
    runs = [
        one_step(
            eos_prone_model, toy_dataset, tmp_path / str(size), optim={"micro_batch_size": size}
        )
        for size in (4, 32)
    ]
    lengths = {run["response/length_max"] for run in runs}
    assert len(lengths) == 1 and runs[0]["response/length_mean"] < min(lengths)  # varied
    assert runs[0]["loss/total"] == pytest.approx(runs[1]["loss/total"], rel=1e-5, abs=1e-7)
    assert runs[0]["grad/norm"] == pytest.approx(runs[1]["grad/norm"], rel=1e-4)
