"""The update normalises Dr. GRPO's token sums by the constant max_response_tokens, not by the
step's padded width, and adds the spec's KL estimator."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainer.engines.base import Completion
from trainer.rl.batch import make_batch
from trainer.rl.optim import build_optimizer
from trainer.rl.update import SkipGuard, batched_logprobs, policy_update
from trainer.spec import TrainSpec

GROUP = 4


def spec_for(model_dir: str, **algorithm) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"path": model_dir},
            "dataset": {"path": "unused.jsonl"},
            "algorithm": {"group_size": GROUP, **algorithm},
            "rollout": {"max_response_tokens": 16},
            "optim": {
                "lr": 1e-9,
                "prompts_per_step": 1,
                "mini_batch_prompts": 1,
                "micro_batch_size": 2,
            },
        }
    )


def one_update(model_dir: str, spec: TrainSpec, ref_shift: float | None = None):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    lengths = [3, 5, 8, 2]  # padded width 8, half of max_response_tokens
    completions = [Completion(0, [10 + i] * n, [-1.0] * n, "stop") for i, n in enumerate(lengths)]
    advantages = torch.tensor([1.0, -0.5, 0.25, -0.75])
    batch = make_batch([[5, 6, 7]], completions, advantages, 0, torch.device("cpu"))
    old = batched_logprobs(model, batch, 2, 1.0)
    ref = None if ref_shift is None else old + ref_shift
    optimizer = build_optimizer(model, spec.optim)
    metrics = policy_update(model, optimizer, batch, old, ref, spec, SkipGuard(3))
    return metrics, batch, advantages, torch.tensor(lengths, dtype=torch.float64)


def test_dr_grpo_divides_by_max_response_tokens(tiny_model_dir: str) -> None:
    policy_loss = {"name": "grpo", "loss_agg_mode": "seq-mean-token-sum-norm"}
    spec = spec_for(tiny_model_dir, policy_loss=policy_loss)
    metrics, _, advantages, lengths = one_update(tiny_model_dir, spec)
    # first mini-batch: r = 1, so each token's loss is −A
    want = float((-advantages.double() * lengths).sum() / (GROUP * 16))
    assert metrics["loss/total"] == pytest.approx(want, rel=1e-9)


def test_kl_term_uses_the_spec_estimator(tiny_model_dir: str) -> None:
    spec = spec_for(tiny_model_dir, kl_coef=0.5, kl_type="k1", reference_model=tiny_model_dir)
    metrics, _, advantages, lengths = one_update(tiny_model_dir, spec, ref_shift=-0.3)
    policy = float((-advantages.double() * lengths).sum() / lengths.sum())
    assert metrics["kl/ref"] == pytest.approx(0.3, rel=1e-9)  # k1 = log π − log π_ref
    assert metrics["loss/total"] == pytest.approx(policy + 0.5 * 0.3, rel=1e-9)
