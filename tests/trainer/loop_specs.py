"""A small, fast TrainSpec on the tiny model and the toy task, shared by the loop tests."""

from collections.abc import Mapping
from typing import Any

from trainer.reporting.callbacks import Callback
from trainer.spec import TrainSpec


def toy_spec(model: str, data: str, **overrides: Any) -> TrainSpec:
    base: dict[str, Any] = {
        "model": {"path": model},
        "dataset": {"path": data},
        "prompt": {"instruction": ""},
        "algorithm": {"reward": "contains", "group_size": 8},
        "rollout": {"max_prompt_tokens": 64, "max_response_tokens": 6},
        "optim": {
            "lr": 2e-2,
            "prompts_per_step": 4,
            "mini_batch_prompts": 4,
            "micro_batch_size": 16,
        },
        "total_steps": 3,
        "checkpoint": {"every_steps": 1, "keep_last": 5},
        "seed": 0,
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainSpec.model_validate(base)


class StopAfter(Callback):
    """Asks the run to stop at the first step boundary after `step` (a clean interruption)."""

    def __init__(self, step: int) -> None:
        self.stop_at, self.seen = step, 0

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self.seen = step

    def should_stop(self) -> bool:
        return self.seen >= self.stop_at
