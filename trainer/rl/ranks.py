"""What `trainer.rl.loop.train` does differently in one process and in a torchrun group.

The loop calls the same five methods either way; `Solo` is the plain single-process run
and `TorchrunGroup` the FSDP2 one (see `trainer.distributed.group` for why the maths matches):

- `prepare`: the model the optimizer steps (FSDP2-sharded in a group);
- `share`: rank 0 computes (rollouts, the stop decision) and every rank receives it;
- `shard`: this rank's slice of the batch (the whole batch in one process);
- `push_weights`: the updated weights into rank 0's rollout engine;
- `checkpoint`: a normal checkpoint, or the sharded one of `trainer.checkpoints.sharded`.

Only rank 0 owns the rollout engine and the callbacks; the others get `IdleEngine` and
a no-op `Callback`, so everything they would report is reported once.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from trainer.checkpoints.local import Checkpoint, save_checkpoint
from trainer.checkpoints.remote import is_remote, save_remote
from trainer.distributed.group import (
    DistEnv,
    broadcast_object,
    env_from_torchrun,
    full_state_dict,
    init_distributed,
    shard_policy,
    shutdown_distributed,
)
from trainer.engines import Completion, EngineOptions, RolloutEngine, SamplingConfig, build_engine
from trainer.reporting.callbacks import Callback
from trainer.rl.step_sync import StepSync
from trainer.spec import TrainSpec

if TYPE_CHECKING:
    from trainer.rl.batch import RolloutBatch
    from trainer.rl.run_state import RunState

T = TypeVar("T")


class Solo:
    """One process: the policy is the HF model and everything is local."""

    is_main = True
    sync: StepSync | None = None
    device: torch.device | None = None
    """None: `trainer.rl.run_state.pick_device` decides from the spec."""

    def callbacks(self, callbacks: Callback) -> Callback:
        return callbacks

    def prepare(self, model: nn.Module, spec: TrainSpec) -> nn.Module:
        """The loaded policy as it is (fp32 masters, see `trainer.precision`)."""
        return model

    def engine(self, name: str, options: EngineOptions) -> RolloutEngine:
        return build_engine(name, options)

    def share(self, compute: Callable[[], T]) -> T:
        return compute()

    def shard(self, batch: "RolloutBatch", mini_rows: int) -> "RolloutBatch":
        return batch

    def push_weights(self, state: "RunState", engine: RolloutEngine) -> None:
        engine.update_weights(state.model.named_parameters())

    def checkpoint(self, output_dir: str, state: "RunState", keep_last: int) -> Checkpoint:
        save = save_remote if is_remote(output_dir) else save_checkpoint
        return save(
            output_dir,
            state.step,
            state.model,
            state.tokenizer,
            state.trainer_state(),
            keep_last=keep_last,
            compute_dtype=state.compute_dtype,
        )

    def close(self) -> None:
        """Called after a run that ended normally."""


class IdleEngine:
    """The rollout engine of ranks > 0: rank 0 generates, so nothing here ever runs."""

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig
    ) -> list[Completion]:
        raise RuntimeError("only rank 0 generates; other ranks receive its rollouts")

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Rank 0's engine alone takes the gathered weights."""

    def sleep(self) -> None:
        """Nothing to release."""

    def wake_up(self) -> None:
        """Nothing to re-acquire."""


class TorchrunGroup(Solo):
    """One rank of a torchrun group: FSDP2 policy, rank-0 rollouts, sharded checkpoints."""

    def __init__(self, env: DistEnv) -> None:
        self.env = env
        self.is_main = env.is_main
        self.device = init_distributed(env)
        self.sync = StepSync(env, self.device)

    def callbacks(self, callbacks: Callback) -> Callback:
        return callbacks if self.is_main else Callback()

    def prepare(self, model: nn.Module, spec: TrainSpec) -> nn.Module:
        """FSDP2 over the fp32 master weights; on GPU, bf16 compute and fp32 reduction.

        On CPU (gloo) parameters are gathered in fp32 and a half-precision spec computes
        under autocast, as one process does, so tests compare with one process exactly.
        """
        on_gpu = self.device.type == "cuda"
        return shard_policy(
            model,
            self.device,
            self.env.world_size,
            param_dtype=torch.bfloat16 if on_gpu else None,
            cpu_offload=spec.model.cpu_offload,
        )

    def engine(self, name: str, options: EngineOptions) -> RolloutEngine:
        """Rank 0's engine holds its own full copy: the policy's weights are sharded. A vLLM
        engine runs outside the group's world, which it would otherwise adopt and deadlock
        in (`trainer.engines.vllm`)."""
        if not self.is_main:
            return IdleEngine()
        return build_engine(name, replace(options, model=None, own_process=True))

    def share(self, compute: Callable[[], T]) -> T:
        return broadcast_object(compute() if self.is_main else None)

    def shard(self, batch: "RolloutBatch", mini_rows: int) -> "RolloutBatch":
        assert self.sync is not None
        return self.sync.shard(batch, mini_rows)

    def push_weights(self, state: "RunState", engine: RolloutEngine) -> None:
        weights = full_state_dict(state.model)  # collective; only rank 0 gets the tensors
        if self.is_main:
            engine.update_weights(_engine_names(engine, weights))

    def checkpoint(self, output_dir: str, state: "RunState", keep_last: int) -> Checkpoint:
        from trainer.checkpoints.sharded import save_sharded_checkpoint

        return save_sharded_checkpoint(
            output_dir,
            state.step,
            state.model,
            state.optimizer,
            state.tokenizer,
            state.trainer_state(),
            self.env,
            keep_last=keep_last,
            compute_dtype=state.compute_dtype,
        )

    def close(self) -> None:
        shutdown_distributed()


def _engine_names(engine: Any, weights: dict[str, torch.Tensor]) -> Iterable[Any]:
    """The gathered tensors, minus tied duplicates an HF engine has no parameter for."""
    model = getattr(engine, "model", None)
    if not isinstance(model, nn.Module):
        return weights.items()
    names = {name for name, _ in model.named_parameters()}
    return [(k, v) for k, v in weights.items() if k in names]


def open_group(output_dir: str) -> Solo:
    """`TorchrunGroup` when this process was started by torchrun, else `Solo`."""
    env = env_from_torchrun()
    if env is None:
        return Solo()
    if is_remote(output_dir):
        raise ValueError(
            f"a torchrun group writes sharded checkpoints to a shared local directory; "
            f"{output_dir!r} is remote: give a local --output and copy it afterwards"
        )
    return TorchrunGroup(env)
