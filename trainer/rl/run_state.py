"""Everything a run holds between steps, built fresh or restored from a checkpoint.

Exact resume rests on three things restored here: the model and optimizer/scheduler
state (bit-exact on CPU: safetensors and `torch.save` keep every bit, and the policy is
loaded in `MASTER_DTYPE` whatever the compute dtype, so a checkpoint's fp32 masters come
back as they were saved, as HF Trainer and verl resume them), the data cursor
(the order is a function of the seed), and the RNG states (python, numpy, torch, CUDA).
Rollout sampling is seeded from (seed, step), so it does not depend on them at all.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.checkpoints.local import (
    Checkpoint,
    latest_valid_checkpoint,
    load_trainer_state,
    remove_partial_checkpoints,
)
from trainer.checkpoints.remote import is_remote, latest_valid_remote
from trainer.checkpoints.sharded import load_optimizer_state
from trainer.data.prompts import PromptStream, build_examples, load_rows
from trainer.devices import training_device
from trainer.precision import MASTER_DTYPE, autocast_dtype
from trainer.reporting.callbacks import Callback
from trainer.rl.optim import build_optimizer, build_scheduler
from trainer.rl.update import SkipGuard
from trainer.spec import TrainSpec


@dataclass
class RunState:
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    stream: PromptStream
    guard: SkipGuard
    step: int
    model_path: str
    """Where the current weights were loaded from (a checkpoint, or the spec's model)."""
    device: torch.device
    resumed_from: Checkpoint | None = None
    compute_dtype: torch.dtype = torch.float32
    """The spec's dtype: what rollout engines compute in and checkpoints are written in."""
    autocast_dtype: torch.dtype | None = None
    """`compute_dtype` when the policy holds fp32 masters of it (`trainer.precision`)."""
    last_rollouts: Any = None
    """The latest step's `Rollouts` (for `logging.sample_every`); not checkpointed."""

    def trainer_state(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        rng: dict[str, Any] = {  # plain data: it is loaded with weights_only=True
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "step": self.step,
            "data_cursor": self.stream.cursor,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "skips": {"consecutive": self.guard.consecutive, "total": self.guard.total},
            "rng": rng,
        }


def pick_device(spec: TrainSpec, rank_device: torch.device | None = None) -> torch.device:
    """See `trainer.devices`: a spec asking for GPUs never falls back to the CPU."""
    return training_device(spec.resources.gpus, rank_device)


def pick_dtype(spec: TrainSpec, device: torch.device) -> torch.dtype:
    if spec.model.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, spec.model.dtype)


def load_model(
    path: str,
    spec: TrainSpec,
    device: torch.device,
    revision: str | None,
    dtype: torch.dtype | None = None,
) -> Any:
    """The model at `path` in `dtype` (default: the spec's compute dtype)."""
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype or pick_dtype(spec, device), revision=revision
    ).to(device)
    if spec.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    return model


def build_run_state(
    spec: TrainSpec,
    output_dir: str,
    *,
    resume: bool,
    callbacks: Callback,
    prepare: Callable[[Any, TrainSpec], Any] | None = None,
    device: torch.device | None = None,
) -> RunState:
    """A fresh run, or the newest checkpoint in `output_dir` that passes its manifest.

    The policy is loaded in fp32 (its master weights, `trainer.precision`) and computes
    in the spec's dtype under autocast. `prepare` wraps it before the optimizer is built
    (FSDP2 sharding in a torchrun group, see `trainer.rl.ranks`); `device` is a
    torchrun rank's own (its GPU, or the CPU under gloo).
    """
    checkpoint = None
    if resume:
        find = latest_valid_remote if is_remote(output_dir) else latest_valid_checkpoint
        checkpoint, rejected = find(output_dir)
        for path in rejected:
            callbacks.on_event("checkpoint_rejected", f"{path} fails its manifest; not resumed")
        if not is_remote(output_dir):  # earlier attempts killed mid-write
            for path in remove_partial_checkpoints(output_dir):
                callbacks.on_event("partial_checkpoint_removed", f"{path}: an unfinished write")
    device = pick_device(spec, device)
    if checkpoint is not None:
        model_path, revision = str(checkpoint.path), None
    else:
        model_path, revision = spec.model.path, spec.model.revision
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model(model_path, spec, device, revision, dtype=MASTER_DTYPE)
    model.train()
    if prepare is not None:
        model = prepare(model, spec)
    compute_dtype = pick_dtype(spec, device)
    examples = build_examples(
        load_rows(spec.dataset),
        tokenizer,
        spec.dataset,
        spec.prompt,
        spec.rollout.max_prompt_tokens,
    )
    optimizer = build_optimizer(model, spec.optim)
    state = RunState(
        model=model,
        tokenizer=tokenizer,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, spec.optim, spec.total_steps),
        stream=PromptStream(examples, seed=spec.seed, shuffle=spec.dataset.shuffle),
        guard=SkipGuard(spec.optim.max_consecutive_skips),
        step=0,
        model_path=model_path,
        device=device,
        resumed_from=checkpoint,
        compute_dtype=compute_dtype,
        autocast_dtype=autocast_dtype(model, compute_dtype),
    )
    if checkpoint is None:
        _seed_everything(spec.seed)
    else:
        _restore(state, load_trainer_state(checkpoint))
        callbacks.on_event("resumed", f"resumed from {checkpoint.path} at step {state.step}")
    return state


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _restore(state: RunState, saved: dict[str, Any]) -> None:
    state.step = int(saved["step"])
    state.stream.cursor = int(saved["data_cursor"])
    assert state.resumed_from is not None
    load_optimizer_state(state.resumed_from.path, state.model, state.optimizer, saved)
    state.scheduler.load_state_dict(saved["scheduler"])
    state.guard.consecutive = int(saved["skips"]["consecutive"])
    state.guard.total = int(saved["skips"]["total"])
    rng = saved["rng"]
    random.setstate(rng["python"])
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
