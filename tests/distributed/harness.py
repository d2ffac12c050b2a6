"""One policy update and checkpoint round trip, run the same way in 1 or N processes.

`python -m torch.distributed.run --nproc_per_node N tests/distributed/harness.py ...`
runs it sharded (FSDP2, gloo); `run(...)` in the test process runs the plain single-process
path. Both write `dump.pt`: the full parameters, the full optimizer state and the loss.
"""

import argparse
import random
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.checkpoints.local import load_trainer_state, save_checkpoint, verify_checkpoint
from trainer.checkpoints.sharded import load_optimizer_state, save_sharded_checkpoint
from trainer.distributed.group import (
    ShardedPolicy,
    env_from_torchrun,
    full_state_dict,
    init_distributed,
    shard_policy,
    shutdown_distributed,
)
from trainer.engines.base import Completion
from trainer.rl.batch import make_batch
from trainer.rl.optim import build_optimizer
from trainer.rl.step_sync import StepSync
from trainer.rl.update import SkipGuard, batched_logprobs, policy_update
from trainer.spec import TrainSpec

GROUP, PROMPTS = 3, 2


def tiny_spec(model_dir: str) -> TrainSpec:
    """3 rows per mini-batch: with 2 ranks one of them pads; 2 epochs x 2 optimizer steps."""
    return TrainSpec.model_validate(
        {
            "model": {"path": model_dir},
            "dataset": {"path": "unused.jsonl"},
            "algorithm": {"group_size": GROUP, "policy_loss": {"name": "dgpo"}},
            "optim": {
                "lr": 1e-2,
                "prompts_per_step": PROMPTS,
                "mini_batch_prompts": 1,
                "micro_batch_size": GROUP,
                "epochs_per_batch": 2,
            },
        }
    )


def fixed_batch(pad_id: int) -> tuple[list[list[int]], list[Completion], torch.Tensor]:
    rng = random.Random(7)
    prompts = [[rng.randrange(3, 200) for _ in range(rng.randrange(3, 7))] for _ in range(PROMPTS)]
    completions = []
    for i in range(PROMPTS * GROUP):
        n = rng.randrange(2, 9)
        completions.append(
            Completion(i // GROUP, [rng.randrange(3, 200) for _ in range(n)], [-1.0] * n, "stop")
        )
    advantages = torch.tensor([rng.uniform(-1, 1) for _ in completions])
    return prompts, completions, advantages


def run(model_dir: str, out: str, mode: str) -> None:
    """mode `update`: one update, then a checkpoint in `out/ckpt`; `resume`: load it."""
    env = env_from_torchrun()
    device = init_distributed(env) if env else torch.device("cpu")
    torch.manual_seed(0)
    spec = tiny_spec(model_dir)
    ckpt_root = Path(out) / "ckpt"
    source = model_dir if mode == "update" else str(_only_checkpoint(Path(mode)))
    lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model: nn.Module = shard_policy(lm, device, env.world_size) if env else lm
    optimizer = build_optimizer(model, spec.optim)
    loss = float("nan")
    if mode == "update":
        prompts, completions, advantages = fixed_batch(tokenizer.pad_token_id)
        batch = make_batch(prompts, completions, advantages, tokenizer.pad_token_id, device)
        sync = StepSync(env, device) if env else None
        if sync is not None:
            batch = sync.shard(batch, spec.optim.mini_batch_prompts * GROUP)
        old = batched_logprobs(model, batch, GROUP, 1.0)
        guard = SkipGuard(5)
        metrics = policy_update(model, optimizer, batch, old, None, spec, guard, sync)
        loss = metrics["loss/total"]
        state = {"step": 1, "optimizer": optimizer.state_dict()}
        if env:
            save_sharded_checkpoint(
                ckpt_root, 1, model, optimizer, tokenizer, state, env, keep_last=1
            )
        else:
            save_checkpoint(ckpt_root, 1, lm, tokenizer, state, keep_last=1)
    else:
        checkpoint = _only_checkpoint(Path(mode))
        load_optimizer_state(
            checkpoint, model, optimizer, load_trainer_state(verify_checkpoint(checkpoint))
        )
    _dump(model, optimizer, loss, Path(out) / "dump.pt", is_main=not env or env.is_main)
    shutdown_distributed()


def _only_checkpoint(root: Path) -> Path:
    (path,) = sorted(root.glob("step-*"))
    return path


def _dump(model: nn.Module, optimizer: Any, loss: float, path: Path, *, is_main: bool) -> None:
    policy = model if isinstance(model, ShardedPolicy) else ShardedPolicy(model)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    params = full_state_dict(policy)
    optim = get_optimizer_state_dict(policy, optimizer, options=options)
    if is_main:
        torch.save({"params": params, "optim": optim["state"], "loss": loss}, path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("out")
    parser.add_argument("mode", help="`update`, or a checkpoint root to resume from")
    args = parser.parse_args()
    run(args.model_dir, args.out, args.mode)
