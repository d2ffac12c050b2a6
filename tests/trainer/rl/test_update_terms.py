"""The update's extra terms act on the gradient, not only on reported values.

- Rollout importance-sampling correction (`algorithm.rollout_is_correction`, verl's
  truncated IS): each token's advantage is weighted by min(π_old / π_rollout, cap), where
  π_old is the trainer's and π_rollout the engine's probability of the sampled token.
- KL to the reference (`algorithm.kl_coef`): the loss gains kl_coef · mean KL, so the
  gradient gains kl_coef · ∇ mean KL.

Each update here is one step of plain SGD (lr 1, no clipping, no decay), so the change of
the parameters is exactly minus the gradient, compared with a gradient built another way.
Seen failing on the ratio inverted (π_rollout / π_old) and on the KL term detached.
"""

import copy
from dataclasses import replace

import pytest
import torch
from torch import Tensor
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.engines import Completion, SamplingConfig
from trainer.engines.hf import HFEngine
from trainer.rl.batch import RolloutBatch, make_batch
from trainer.rl.kl import kl_penalty
from trainer.rl.update import SkipGuard, batched_logprobs, policy_update, response_logprobs
from trainer.spec import TrainSpec

GROUP, PROMPTS = 4, 2
CAP = 2.0


def spec_for(**algorithm: object) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"path": "unused"},
            "dataset": {"path": "unused.jsonl"},
            "algorithm": {"group_size": GROUP, "rollout_is_cap": CAP, **algorithm},
            "optim": {
                "prompts_per_step": PROMPTS,
                "mini_batch_prompts": PROMPTS,
                "micro_batch_size": GROUP,
                "grad_clip": None,
            },
        }
    )


@pytest.fixture(scope="module")
def sampled(tiny_model_dir: str) -> tuple[torch.nn.Module, list[list[int]], list[Completion]]:
    """The tiny model in float64 and GROUP responses to each of PROMPTS prompts."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [tokenizer.encode(f"Say {d}") for d in range(PROMPTS)]
    engine = HFEngine(model, eos_token_id=2, pad_token_id=0, batch_size=PROMPTS)
    sampling = SamplingConfig(n=GROUP, temperature=1.0, top_p=1.0, max_tokens=6, seed=3)
    return model, prompts, engine.generate(prompts, sampling)


def sgd_gradient(
    model: torch.nn.Module,
    batch: RolloutBatch,
    old: Tensor,
    ref: Tensor | None,
    spec: TrainSpec,
) -> Tensor:
    """The gradient `policy_update` followed, read off one SGD step of a copy of `model`."""
    model = copy.deepcopy(model)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    policy_update(model, optimizer, batch, old, ref, spec, SkipGuard(1))
    return before - torch.cat([p.detach().flatten() for p in model.parameters()])


def test_rollout_correction_weights_each_advantage_by_trainer_over_engine_ratio(
    sampled: tuple[torch.nn.Module, list[list[int]], list[Completion]],
) -> None:
    """Engine log-probs shifted by δ per response: its weight is min(e^-δ, cap), so the
    corrected update equals the plain update on advantages A · min(e^-δ, cap)."""
    model, prompts, completions = sampled
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5] * PROMPTS)
    batch = make_batch(prompts, completions, advantages, 0, torch.device("cpu"))
    old = batched_logprobs(model, batch, GROUP, 1.0)
    shifts = [-1.0, -0.3, 0.3, 0.7] * PROMPTS  # the first is past the cap: e^1 > 2
    engine_view = [
        replace(c, logprobs=[lp + shift for lp in old[i, : len(c.token_ids)].tolist()])
        for i, (c, shift) in enumerate(zip(completions, shifts, strict=True))
    ]
    shifted = make_batch(prompts, engine_view, advantages, 0, torch.device("cpu"))

    corrected = sgd_gradient(model, shifted, old, None, spec_for(rollout_is_correction=True))
    weights = torch.tensor(shifts, dtype=torch.float64).neg().exp().clamp(max=CAP)
    reweighted = replace(batch, advantages=advantages * weights)
    expected = sgd_gradient(model, reweighted, old, None, spec_for())
    plain = sgd_gradient(model, batch, old, None, spec_for())

    # The engine's log-probs are stored in float32: the weights agree to its rounding.
    assert (corrected - expected).norm() < 1e-5 * expected.norm()
    assert (corrected - plain).norm() > 0.1 * plain.norm()  # the correction mattered


def test_kl_term_adds_its_gradient_to_the_update(
    sampled: tuple[torch.nn.Module, list[list[int]], list[Completion]],
) -> None:
    """With every advantage 0 the policy loss has no gradient: the whole update is
    kl_coef · ∇ token-mean KL(π ‖ π_ref), toward a reference that differs from π."""
    model, prompts, completions = sampled
    batch = make_batch(prompts, completions, torch.zeros(len(completions)), 0, torch.device("cpu"))
    old = batched_logprobs(model, batch, GROUP, 1.0)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    ref = batched_logprobs(reference, batch, GROUP, 1.0)
    coef = 0.5

    update = sgd_gradient(model, batch, old, ref, spec_for(kl_coef=coef))
    by_hand = copy.deepcopy(model)
    logprobs, _ = response_logprobs(by_hand, batch, 1.0)
    kl = kl_penalty(logprobs, ref, "low_var_kl")
    (coef * kl[batch.response_mask].mean()).backward()
    expected = torch.cat([p.grad.flatten() for p in by_hand.parameters()])

    assert expected.norm() > 0
    torch.testing.assert_close(update, expected, rtol=1e-6, atol=1e-12)
