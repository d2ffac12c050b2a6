"""DGPO on the toy task raises the tiny model's reward well above where it starts."""

from pathlib import Path

from tests.trainer.loop_specs import toy_spec
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train


class Rewards(Callback):
    def __init__(self) -> None:
        self.by_step: list[float] = []

    def on_step_end(self, step: int, metrics) -> None:  # type: ignore[no-untyped-def]
        self.by_step.append(metrics["reward/mean"])


def test_dgpo_raises_mean_reward_on_the_toy_task(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    spec = toy_spec(
        tiny_model_dir,
        toy_dataset,
        optim={"prompts_per_step": 8, "mini_batch_prompts": 8, "micro_batch_size": 32},
        total_steps=24,
        checkpoint={"every_steps": 0},
    )
    assert spec.algorithm.policy_loss.name == "dgpo"
    rewards = Rewards()
    train(spec, output_dir=str(tmp_path), callbacks=rewards, resume=False)
    start, end = rewards.by_step[:4], rewards.by_step[-4:]
    assert sum(end) / 4 > sum(start) / 4 + 0.15, rewards.by_step
