"""Multi-process training under `torchrun`: process group, FSDP2 sharding, global counts.

One process per GPU (or per CPU "slot" with gloo in tests). Every rank holds 1/W of each
parameter (`fully_shard` per decoder layer, then the root), trains on its contiguous slice
of every mini-batch, and normalises its loss by the *global* token/sequence counts of the
mini-batch (all-reduced). Why that gives exactly the single-process gradient:

    single process:  g = ∇ Σ_{all tokens i} l_i / N,        N = global count
    rank r:          g_r = ∇ Σ_{i on r} l_i / N   (same N on every rank)
    reduce-scatter:  Σ_r g_r = g                  (SUM, not FSDP's default mean)

FSDP2 averages gradients over ranks by default (it divides by W), which would give g / W;
`shard_policy` sets the divide factor to 1 so the reduce-scatter sums. Padding rows added to
even out the ranks carry no valid token, so they add nothing to the loss, the gradient or
the counts. The loss reported is the all-reduced sum, i.e. the single-process loss. The per-step
part (slices, global counts and sums) is `trainer.rl.step_sync.StepSync`.

Rollouts: rank 0 alone owns the rollout engine; it generates and broadcasts the completions
(`broadcast_object`), so every rank builds the same batch and takes its slice. On GPU the
vLLM engine on rank 0 uses `rollout.tensor_parallel_size` from the spec and is woken before
generation and put to sleep around the update, so it shares the GPUs with the FSDP shards.
"""

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    fully_shard,
)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the group, as torchrun describes it."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_torchrun() -> DistEnv | None:
    """The torchrun environment, or None when this process was not started by torchrun."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        return DistEnv(
            rank=int(os.environ["RANK"]),
            world_size=int(os.environ["WORLD_SIZE"]),
            local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
        )
    except (KeyError, ValueError) as exc:
        raise RuntimeError(
            f"incomplete torchrun environment ({exc}); launch with `python -m "
            "torch.distributed.run` (see trainer.distributed.launch) or unset WORLD_SIZE"
        ) from exc


def init_distributed(env: DistEnv) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); returns this rank's device."""
    if torch.cuda.is_available():
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=env.rank, world_size=env.world_size)
    return device


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()  # a rank leaving while another still talks aborts the group
        dist.destroy_process_group()


class ShardedPolicy(nn.Module):
    """The HF causal LM as one FSDP root, seen through the two calls the update makes.

    `trainer.rl.update.response_logprobs` calls `model.base_model(...)` and then uses
    `model.get_output_embeddings().weight`. Called on a bare HF model under FSDP2 that
    would skip the root's hooks (embeddings and lm_head stay sharded). Here `base_model`
    is this module's own forward, so the root unshards its parameters first, and since
    FSDP2 keeps the root unsharded until backward, the (possibly tied) lm_head weight is
    the full tensor when the update reads it.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Any:
        return self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask)

    @property
    def base_model(self) -> "ShardedPolicy":
        return self

    def get_output_embeddings(self) -> nn.Module:
        return self.lm.get_output_embeddings()


def shard_policy(
    lm: nn.Module,
    device: torch.device,
    world_size: int,
    *,
    param_dtype: torch.dtype | None = None,
    cpu_offload: bool = False,
) -> ShardedPolicy:
    """FSDP2 over `world_size` ranks: one unit per decoder layer, then the root.

    `param_dtype` is the compute dtype (bf16 on GPU; None keeps the stored dtype, which the
    CPU equality tests need); gradients are always reduced in fp32.
    """
    mesh = init_device_mesh(device.type, (world_size,))
    policy = ShardedPolicy(lm)
    options: dict[str, Any] = {
        "mesh": mesh,
        "mp_policy": MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32),
    }
    if cpu_offload:
        options["offload_policy"] = CPUOffloadPolicy()
    for layer in _decoder_layers(lm):
        fully_shard(layer, **options)
    fully_shard(policy, **options)
    for module in policy.modules():
        if hasattr(module, "set_gradient_divide_factor"):
            module.set_gradient_divide_factor(1.0)  # sum over ranks: see the module docstring
            module.set_force_sum_reduction_for_comms(True)  # plain SUM: gloo has no PREMUL_SUM
    return policy


def _decoder_layers(lm: nn.Module) -> list[nn.Module]:
    layers = getattr(getattr(lm, "base_model", None), "layers", None)
    if layers is None:
        raise TypeError(
            f"{type(lm).__name__} has no `base_model.layers`; FSDP wrapping needs a "
            "decoder-only HF model (Llama/Qwen/Mistral style)"
        )
    return list(layers)


def full_state_dict(policy: ShardedPolicy) -> dict[str, Tensor]:
    """The whole model's weights with HF names, on CPU; collective (every rank must call).

    Rank 0 receives the full tensors; other ranks get an empty dict.
    """
    if isinstance(policy, FSDPModule):  # a no-grad forward leaves the root unsharded
        policy.reshard()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(policy, options=options)
    return {_hf_name(k): v for k, v in state.items()}


def _hf_name(name: str) -> str:
    return name.removeprefix("lm.")


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (pickled; for rollouts and small metadata)."""
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
