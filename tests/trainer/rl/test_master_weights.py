"""bf16 compute keeps fp32 master weights: small updates land, and checkpoints hold them
(fp32 tensors, bf16 declared in `config.json`)."""

import json
from pathlib import Path

import torch
from safetensors import safe_open

from tests.trainer.loop_specs import toy_spec
from trainer.engines import build_engine
from trainer.reporting.callbacks import Callback
from trainer.rewards.registry import build_reward
from trainer.rl.batch import make_batch
from trainer.rl.loop import _engine_options, collect_rollouts
from trainer.rl.ranks import Solo
from trainer.rl.run_state import build_run_state
from trainer.rl.update import batched_logprobs, policy_update


def test_bf16_run_steps_fp32_masters_that_move_at_lr_1e6_and_saves_them(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    spec = toy_spec(tiny_model_dir, toy_dataset, total_steps=1)
    spec = spec.model_copy(
        update={
            "model": spec.model.model_copy(update={"dtype": "bfloat16"}),
            "optim": spec.optim.model_copy(update={"lr": 1e-6, "weight_decay": 0.0}),
        }
    )
    solo = Solo()
    state = build_run_state(
        spec, str(tmp_path), resume=False, callbacks=Callback(), prepare=solo.prepare
    )
    assert state.autocast_dtype == torch.bfloat16
    engine = build_engine("hf", _engine_options(spec, state))
    rollouts = collect_rollouts(spec, state, engine, build_reward(spec.algorithm))
    advantages = torch.linspace(-1.0, 1.0, len(rollouts.completions))
    prompts = [ex.prompt_ids for ex in rollouts.examples]
    batch = make_batch(prompts, rollouts.completions, advantages, 0, state.device)
    old = batched_logprobs(state.model, batch, 16, 1.0, compute_dtype=torch.bfloat16)
    # The engine sampled from the live masters in bf16, as the trainer computes.
    diff = (old - batch.rollout_logprobs)[batch.response_mask].abs().max()
    assert diff < 0.05, f"engine and trainer log-probs differ by {diff}"
    before = {n: p.detach().clone() for n, p in state.model.named_parameters()}
    policy_update(
        state.model,
        state.optimizer,
        batch,
        old,
        None,
        spec,
        state.guard,
        compute_dtype=state.autocast_dtype,
    )

    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    assert all(p.dtype == torch.float32 for p in params)
    moments = [t for s in state.optimizer.state.values() for t in s.values() if t.dim() > 0]
    assert moments and all(t.dtype == torch.float32 for t in moments)
    moved = sum(int((p != before[n]).sum()) for n, p in state.model.named_parameters())
    total = sum(p.numel() for p in params)
    assert moved / total > 0.9, f"only {moved / total:.1%} of the weights moved"

    saved = solo.checkpoint(str(tmp_path), state, keep_last=1).path
    assert json.loads((saved / "config.json").read_text())["dtype"] == "bfloat16"
    masters = dict(state.model.named_parameters())
    with safe_open(str(saved / "model.safetensors"), "pt") as f:
        for name in f.keys():  # noqa: SIM118
            assert torch.equal(f.get_tensor(name), masters[name]), name  # fp32, every bit
