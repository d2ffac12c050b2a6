"""DAPO's overlong shaping equals verl's reward manager; overlong filtering masks truncated
responses; dynamic sampling judges groups on their scores before the length penalty, keeps
generating until the batch is full, and says when it cannot."""

from pathlib import Path

import pytest
import torch

from tests.trainer.loop_specs import eos_prone_copy, toy_spec
from trainer.engines import build_engine
from trainer.engines.base import Completion
from trainer.reporting.callbacks import Callback
from trainer.rewards.registry import build_reward
from trainer.rl.batch import make_batch
from trainer.rl.dapo import mask_truncated, overlong_penalty
from trainer.rl.loop import _engine_options, collect_rollouts, train
from trainer.rl.ranks import Solo
from trainer.rl.run_state import build_run_state


def verl_overlong_reward(valid_response_length, max_resp_len, buffer_len, penalty_factor):
    """verl/workers/reward_manager/dapo.py (volcengine/verl @ b178a3cd56f58b2d502255daba591e
    92833930a7), the overlong_buffer branch."""
    expected_len = max_resp_len - buffer_len
    exceed_len = valid_response_length - expected_len
    return min(-exceed_len / buffer_len * penalty_factor, 0)


@pytest.mark.parametrize("length", [1, 12, 16, 17, 20, 31, 32])
def test_overlong_penalty_equals_verls(length: int) -> None:
    want = verl_overlong_reward(length, 32, 16, 0.5)
    assert overlong_penalty(length, 32, 16, 0.5) == pytest.approx(want, abs=1e-15)
    assert overlong_penalty(length, 32, 0, 0.5) == 0.0


def test_overlong_filter_masks_truncated_responses() -> None:
    completions = [
        Completion(0, [5, 6, 2], [-1.0] * 3, "stop"),
        Completion(0, [5, 6, 7, 8], [-1.0] * 4, "length"),
    ]
    batch = make_batch([[1, 2]], completions, torch.zeros(2), 0, torch.device("cpu"))
    masked = mask_truncated(batch, completions)
    assert masked.response_mask.tolist() == [[True, True, True, False], [False] * 4]


def test_accuracy_counts_correct_answers_before_the_overlong_penalty(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    """Every toy response is 6 tokens, all inside a 6-token L_cache: each reward is cut by
    the full penalty factor, yet accuracy still counts the correct ones."""
    spec = toy_spec(
        tiny_model_dir,
        toy_dataset,
        algorithm={"overlong_buffer_len": 6, "overlong_penalty_factor": 0.5},
        total_steps=1,
        checkpoint={"every_steps": 0},
    )
    recorder = Recorder()
    train(spec, output_dir=str(tmp_path), callbacks=recorder, resume=False)
    (metrics,) = recorder.metrics
    assert metrics["response/length_mean"] == 6.0
    assert metrics["reward/accuracy"] > 0
    assert metrics["reward/mean"] == pytest.approx(metrics["reward/accuracy"] - 0.5)


class Recorder(Callback):
    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []
        self.events: list[tuple[str, str]] = []

    def on_step_end(self, step: int, metrics) -> None:  # type: ignore[no-untyped-def]
        self.metrics.append(dict(metrics))

    def on_event(self, kind: str, message: str) -> None:
        self.events.append((kind, message))


def run(model: str, data: str, out: Path, rounds: int) -> Recorder:
    spec = toy_spec(
        model,
        data,
        algorithm={"dynamic_sampling": True, "max_resample_rounds": rounds},
        total_steps=3,
        checkpoint={"every_steps": 0},
    )
    recorder = Recorder()
    train(spec, output_dir=str(out), callbacks=recorder, resume=False)
    return recorder


def test_dynamic_sampling_refills_until_full_or_reports_the_short_batch(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    """At random init most groups score all 0: refilling takes several generation batches."""
    for rounds in (9, 0):
        recorder = run(tiny_model_dir, toy_dataset, tmp_path / str(rounds), rounds=rounds)
        short = [m for m in recorder.metrics if m["batch/groups"] < 4]
        assert all(m["batch/gen_batches"] == rounds + 1 for m in short)
        kinds = [kind for kind, _ in recorder.events]
        assert kinds.count("dynamic_sampling_short") == len(short) > 0
        if rounds:  # a step that refilled to the full batch
            assert any(
                m["batch/groups"] == 4 and m["batch/gen_batches"] > 1 for m in recorder.metrics
            )


def test_dynamic_sampling_judges_groups_on_scores_before_the_length_penalty(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    """Responses of varied lengths, all inside L_cache: no group's shaped rewards are all
    equal, yet a group whose scores are (verl's `acc` metric) carries no signal and is
    dropped. Kept groups are exactly those with differing scores."""
    model = eos_prone_copy(tiny_model_dir, tmp_path / "eos_prone")
    spec = toy_spec(
        model,
        toy_dataset,
        algorithm={
            "dynamic_sampling": True,
            "overlong_buffer_len": 12,
            "overlong_penalty_factor": 0.5,
        },
        rollout={"max_response_tokens": 12},
    )
    state = build_run_state(
        spec, str(tmp_path / "run"), resume=False, callbacks=Callback(), prepare=Solo().prepare
    )
    engine = build_engine("hf", _engine_options(spec, state))
    rollouts = collect_rollouts(spec, state, engine, build_reward(spec.algorithm))
    size = spec.algorithm.group_size
    groups = [slice(i * size, (i + 1) * size) for i in range(len(rollouts.examples))]
    lengths = {len(c.token_ids) for c in rollouts.completions}
    assert len(lengths) > 1  # the penalty differs within groups
    assert rollouts.gen_batches > 1  # a group was dropped, so generation went on
    assert all(len(set(rollouts.scores[g])) > 1 for g in groups)
