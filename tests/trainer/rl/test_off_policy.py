"""Off-policy updates (several epochs and mini-batches per rollout batch) on a model with
peaked distributions: DGPO's LN/HP regions fire, its update differs from GRPO's on the same
batch, and its probability-gradient weight W stays bounded by max 1/π_old where CISPO's grows.

On-policy (one update per rollout) every ratio is 1 and all nine losses coincide; this is the
regime where they do not."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.engines import SamplingConfig
from trainer.engines.hf import HFEngine
from trainer.rl.batch import make_batch
from trainer.rl.optim import build_optimizer
from trainer.rl.update import SkipGuard, batched_logprobs, policy_update
from trainer.spec import TrainSpec

GROUP, PROMPTS = 4, 4


def spec_for(name: str, **policy_loss) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"path": "unused"},
            "dataset": {"path": "unused.jsonl"},
            "algorithm": {"group_size": GROUP, "policy_loss": {"name": name, **policy_loss}},
            "optim": {
                "lr": 5e-2,
                "prompts_per_step": PROMPTS,
                "mini_batch_prompts": PROMPTS // 2,
                "micro_batch_size": GROUP,
                "epochs_per_batch": 4,
                "grad_clip": None,
            },
        }
    )


@pytest.fixture(scope="module")
def setup(tiny_model_dir: str):  # type: ignore[no-untyped-def]
    """A peaked model (output embeddings scaled ×6), a sampled batch, fixed ± advantages."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(6.0)
    engine = HFEngine(model, eos_token_id=2, pad_token_id=0, batch_size=PROMPTS)
    prompts = [tokenizer.encode(f"Say {d}") for d in range(PROMPTS)]
    completions = engine.generate(
        prompts, SamplingConfig(n=GROUP, temperature=1.0, top_p=1.0, max_tokens=8, seed=1)
    )
    advantages = torch.tensor([1.0, -1.0] * (PROMPTS * GROUP // 2))
    batch = make_batch(prompts, completions, advantages, 0, torch.device("cpu"))
    old = batched_logprobs(model, batch, GROUP, 1.0)
    return model, batch, old


def update(setup, name: str, **policy_loss):  # type: ignore[no-untyped-def]
    model, batch, old = setup
    model = copy.deepcopy(model)
    spec = spec_for(name, **policy_loss)
    optimizer = build_optimizer(model, spec.optim)
    metrics = policy_update(model, optimizer, batch, old, None, spec, SkipGuard(3))
    return metrics, torch.cat([p.detach().flatten() for p in model.parameters()])


def test_off_policy_dgpo_differs_from_grpo_and_bounds_the_weight_cispo_does_not(setup) -> None:  # type: ignore[no-untyped-def]
    model, batch, old = setup
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    bound = float(old[batch.response_mask].neg().exp().max())  # max 1/π_old
    dgpo, theta_dgpo = update(setup, "dgpo")
    grpo, theta_grpo = update(setup, "grpo")
    cispo, _ = update(setup, "cispo", clip_ratio_low=0.2)
    assert dgpo["clip/ln_frac"] > 0.01 and dgpo["clip/hp_frac"] > 0.01
    gap = (theta_dgpo - theta_grpo).norm() / (theta_grpo - start).norm()
    assert gap > 0.05
    assert dgpo["weight/max"] <= bound * (1 + 1e-9)
    assert cispo["weight/max"] > 10 * bound
    # Outside the trust region, where the losses differ: GRPO's clip zeroes the gradient,
    # DGPO's decays it below the in-region bound, CISPO's keeps growing as π → 0.
    assert grpo["weight/outside_max"] == 0.0
    assert 0.0 < dgpo["weight/outside_max"] <= bound
    assert cispo["weight/outside_max"] > 10 * bound
