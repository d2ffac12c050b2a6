"""A small, fast TrainSpec on the tiny model and the toy task, and a variant of the tiny
model whose responses end at varied lengths, shared by the loop tests."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

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


def eos_prone_copy(model_dir: str, out: Path) -> str:
    """The tiny model with EOS's (tied) embedding moved along the mean final hidden state,
    so that about one token in six is EOS; saved to `out`."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = torch.randint(3, len(tokenizer), (8, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden = model.base_model(input_ids=ids).last_hidden_state.reshape(-1, 64)
        mean = hidden.mean(0)
        weight = model.get_output_embeddings().weight
        weight[tokenizer.eos_token_id] += 4.0 * mean / mean.square().sum()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
