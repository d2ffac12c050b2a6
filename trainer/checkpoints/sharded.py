"""Checkpoints of a sharded (FSDP2) run, readable by any number of processes.

A sharded run writes the same layout as a single process (`trainer.checkpoints.local`): an HF
model directory gathered to rank 0 (so vLLM, `from_pretrained` and evaluation load it
as usual) and `trainer_state.pt`, except that the optimizer state is not in
`trainer_state.pt` but in `optimizer/`, a `torch.distributed.checkpoint` directory where
each rank wrote its own shards. DCP stores every tensor with its global shape and offsets,
so `load_optimizer_state` re-shards it for any world size, including one plain process.
A single-process checkpoint (optimizer inside `trainer_state.pt`, keyed by parameter
position) is loaded into a sharded run by naming each position with its parameter.
"""

import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import Tensor, nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from trainer.checkpoints.local import Checkpoint, NonFiniteModelError, save_checkpoint
from trainer.checkpoints.safe_load import PlainDataPlanner, PlainDataReader
from trainer.distributed.group import DistEnv, ShardedPolicy, broadcast_object, full_state_dict

OPTIMIZER_DIR = "optimizer"


class _GatheredModel:
    """What `save_checkpoint` needs of a model, backed by the gathered full state dict."""

    def __init__(self, lm: nn.Module, state: dict[str, Tensor]) -> None:
        self.lm = lm
        self.state = state

    def parameters(self) -> list[Tensor]:
        return list(self.state.values())

    @property
    def config(self) -> Any:
        return self.lm.config

    def save_pretrained(self, path: Path, **kwargs: Any) -> None:
        self.lm.save_pretrained(path, state_dict=self.state, **kwargs)


def save_sharded_checkpoint(
    root: str | Path,
    step: int,
    policy: ShardedPolicy,
    optimizer: torch.optim.Optimizer,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    env: DistEnv,
    *,
    keep_last: int,
    compute_dtype: torch.dtype | None = None,
) -> Checkpoint:
    """Collective: every rank calls it. Rank 0 writes the HF model (the gathered fp32
    masters, `compute_dtype` in its config) and the trainer state, every rank its optimizer
    shards; the directory appears atomically once complete."""
    weights = full_state_dict(policy)
    finite = broadcast_object(all(bool(torch.isfinite(t).all()) for t in weights.values()))
    if not finite:
        raise NonFiniteModelError(f"step {step}: the model has non-finite parameters")
    staging = Path(root) / f".tmp-{OPTIMIZER_DIR}-{step:08d}"
    if env.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    dist.barrier()
    dcp.save({"optimizer": get_optimizer_state_dict(policy, optimizer)}, checkpoint_id=staging)
    dist.barrier()
    saved = None
    if env.is_main:
        state = {k: v for k, v in trainer_state.items() if k != "optimizer"}
        saved = save_checkpoint(
            root,
            step,
            _GatheredModel(policy.lm, weights),
            tokenizer,
            state,
            keep_last=keep_last,
            extra=lambda tmp: shutil.move(staging, tmp / OPTIMIZER_DIR),
            compute_dtype=compute_dtype,
        )
    return broadcast_object(saved)


def load_optimizer_state(
    checkpoint_path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    saved: dict[str, Any],
) -> None:
    """Restore `optimizer` from either checkpoint kind, for this run's world size.

    `model` is the `ShardedPolicy` of a sharded run or the plain HF model of one process;
    `saved` is the checkpoint's loaded `trainer_state.pt`. Collective when sharded.
    """
    policy = model if isinstance(model, ShardedPolicy) else ShardedPolicy(model)
    sharded = Path(checkpoint_path) / OPTIMIZER_DIR
    if sharded.is_dir():
        state = {"optimizer": get_optimizer_state_dict(policy, optimizer)}
        try:
            dcp.load(state, storage_reader=PlainDataReader(sharded), planner=PlainDataPlanner())
        except CheckpointException as exc:  # a BaseException: callers' `except Exception` miss it
            reasons = "; ".join(str(error) for error, _ in exc.failures.values())
            raise RuntimeError(
                f"loading the optimizer state in {sharded} failed: {reasons}"
            ) from None
        set_optimizer_state_dict(policy, optimizer, state["optimizer"])
        return
    if "optimizer" not in saved:
        raise FileNotFoundError(
            f"{checkpoint_path} has neither {OPTIMIZER_DIR}/ nor an optimizer in its trainer "
            "state; it is incomplete: resume from an earlier checkpoint"
        )
    if not isinstance(model, ShardedPolicy):
        optimizer.load_state_dict(saved["optimizer"])
        return
    set_optimizer_state_dict(
        policy,
        optimizer,
        _named_optimizer_state(policy, optimizer, saved["optimizer"]),
        options=StateDictOptions(full_state_dict=True),
    )


def _named_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> dict[str, Any]:
    """`Optimizer.state_dict()` (keyed by position) keyed by parameter name instead.

    Positions follow `optimizer.param_groups`, which `trainer.rl.optim.build_optimizer` fills
    in `model.parameters()` order in every run, sharded or not.
    """
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    return {
        "state": {order[i]: value for i, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [order[i] for i in group["params"]]}
            for group in state["param_groups"]
        ],
    }
