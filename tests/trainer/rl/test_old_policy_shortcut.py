"""π_old from the update's own forward (one pass over the batch) gives the same loss and
gradients, bit for bit, as the separate no-grad pass; with several mini-batches or epochs
the separate pass still runs, before any optimizer step.

Seen failing with the shortcut's π_old not detached (`old = logprobs`): the same loss
values, but the ratio's gradient vanished (grad/norm 0.75 with the separate pass, 0.0).
"""

import copy

import pytest
import torch
from torch import Tensor
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.engines import SamplingConfig
from trainer.engines.hf import HFEngine
from trainer.rl.batch import RolloutBatch, make_batch
from trainer.rl.update import (
    SkipGuard,
    batched_logprobs,
    old_policy_logprobs,
    policy_update,
    single_pass,
)
from trainer.spec import TrainSpec

GROUP, PROMPTS, MICRO = 4, 4, 4


def spec_for(loss: str, mini_batch_prompts: int = PROMPTS, epochs: int = 1) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"path": "unused"},
            "dataset": {"path": "unused.jsonl"},
            "algorithm": {
                "group_size": GROUP,
                "policy_loss": {"name": loss},
                "rollout_is_correction": True,
            },
            "optim": {
                "prompts_per_step": PROMPTS,
                "mini_batch_prompts": mini_batch_prompts,
                "micro_batch_size": MICRO,
                "epochs_per_batch": epochs,
            },
        }
    )


@pytest.fixture(scope="module")
def rollouts(tiny_model_dir: str) -> tuple[torch.nn.Module, RolloutBatch]:
    """The tiny model (fp32, train mode, as the loop holds it) and a batch it sampled."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).train()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [tokenizer.encode(f"Say {d}") for d in range(PROMPTS)]
    engine = HFEngine(model, eos_token_id=2, pad_token_id=0, batch_size=PROMPTS)
    sampling = SamplingConfig(n=GROUP, temperature=1.0, top_p=1.0, max_tokens=8, seed=3)
    completions = engine.generate(prompts, sampling)
    advantages = torch.linspace(-1.0, 1.0, len(completions))
    return model, make_batch(prompts, completions, advantages, 0, torch.device("cpu"))


def update_with(
    model: torch.nn.Module,
    batch: RolloutBatch,
    spec: TrainSpec,
    old: Tensor | None,
    compute_dtype: torch.dtype | None,
) -> tuple[dict[str, float], list[Tensor], list[Tensor]]:
    """Metrics, every gradient the optimizer saw, and the parameters after the step."""
    model = copy.deepcopy(model)
    grads: list[Tensor] = []
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda p: grads.append(p.grad.detach().clone()))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    metrics = policy_update(
        model, optimizer, batch, old, None, spec, SkipGuard(1), compute_dtype=compute_dtype
    )
    return metrics, grads, [p.detach() for p in model.parameters()]


@pytest.mark.parametrize("compute_dtype", [None, torch.bfloat16], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("loss", ["dgpo", "grpo", "cispo"])
def test_shortcut_equals_the_separate_pass_bit_for_bit(
    rollouts: tuple[torch.nn.Module, RolloutBatch], loss: str, compute_dtype: torch.dtype | None
) -> None:
    model, batch = rollouts
    spec = spec_for(loss)
    assert single_pass(spec)
    assert old_policy_logprobs(model, batch, spec, compute_dtype=compute_dtype) is None
    old = batched_logprobs(model, batch, MICRO, 1.0, compute_dtype=compute_dtype)

    separate = update_with(model, batch, spec, old, compute_dtype)
    shortcut = update_with(model, batch, spec, None, compute_dtype)

    assert separate[0] == shortcut[0]  # every loss term and diagnostic, exactly
    assert separate[0]["grad/norm"] > 0
    assert len(separate[1]) == len(shortcut[1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(separate[1], shortcut[1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(separate[2], shortcut[2], strict=True))


@pytest.mark.parametrize(("mini_batch_prompts", "epochs"), [(2, 1), (4, 2)])
def test_several_passes_keep_the_separate_pass(
    rollouts: tuple[torch.nn.Module, RolloutBatch], mini_batch_prompts: int, epochs: int
) -> None:
    """Counted on the real backbone: the separate pass's forwards, then the update's."""
    model, batch = rollouts
    model = copy.deepcopy(model)
    spec = spec_for("dgpo", mini_batch_prompts, epochs)
    calls: list[bool] = []
    hook = model.base_model.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    old = old_policy_logprobs(model, batch, spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="one pass"):
        policy_update(model, optimizer, batch, None, None, spec, SkipGuard(1))
    assert old is not None
    policy_update(model, optimizer, batch, old, None, spec, SkipGuard(1))
    hook.remove()

    micro_batches = len(batch.advantages) // MICRO
    assert calls == [False] * micro_batches + [True] * micro_batches * epochs


def test_one_pass_runs_one_forward_per_micro_batch(
    rollouts: tuple[torch.nn.Module, RolloutBatch],
) -> None:
    model, batch = rollouts
    model = copy.deepcopy(model)
    spec = spec_for("dgpo")
    calls: list[bool] = []
    hook = model.base_model.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    old = old_policy_logprobs(model, batch, spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    policy_update(model, optimizer, batch, old, None, spec, SkipGuard(1))
    hook.remove()

    assert calls == [True] * (len(batch.advantages) // MICRO)
