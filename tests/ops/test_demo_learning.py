"""`dgpo demo`'s train job makes the tiny model better at its toy task.

The request the demo submits, validated as the API validates it, run by the trainer a
worker's child runs (`trainer.rl.loop.train`, built-in names resolved as there): the
training reward rises from near 0 to most responses right, and the demo's one-line summary
says so. The whole demo through the embedded stack runs in test_embedded.py (two steps).
"""

from collections.abc import Mapping
from pathlib import Path

from dgpo.commands.demo import DEMO_STEPS, reward_summary, train_request
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train
from trainer.spec.jobs import JOB_REQUEST_ADAPTER


class Rewards(Callback):
    def __init__(self) -> None:
        self.by_step: list[float] = []

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.by_step.append(metrics["reward/mean"])


def test_the_demo_training_run_raises_the_reward_from_near_0_to_most_right(
    tmp_path: Path,
) -> None:
    spec = JOB_REQUEST_ADAPTER.validate_python(train_request(DEMO_STEPS)).spec()
    spec = spec.model_copy(
        update={"checkpoint": spec.checkpoint.model_copy(update={"every_steps": 0})}
    )
    rewards = Rewards()
    train(spec, output_dir=str(tmp_path), callbacks=rewards, resume=False)
    first, last = rewards.by_step[:5], rewards.by_step[-5:]
    assert sum(first) / 5 <= 0.3 and sum(last) / 5 >= 0.6, rewards.by_step
    summary = reward_summary(rewards.by_step)
    assert f"{sum(first) / 5:.2f} over steps 1-5" in summary, summary
