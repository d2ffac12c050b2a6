"""Mixed precision on one device: fp32 master weights, half-precision compute by autocast.

With `model.dtype: bfloat16` (or `auto` on a GPU) the optimizer must not step bf16
parameters: bf16 keeps 8 bits of mantissa, so an update smaller than 2^-8 of a weight
rounds away (at lr 1e-6 one AdamW step moved 2% of a tiny model's weights; with fp32
masters it moves all of them). The policy is therefore always loaded in `MASTER_DTYPE`
(`trainer.rl.run_state`), so parameters, gradients and AdamW moments are fp32, and
`autocast` runs the forward and backward matmuls in the compute dtype.

Why autocast rather than a bf16 compute copy (what FSDP2's `MixedPrecisionPolicy` does):
- memory per parameter: autocast holds 4 (fp32 weight) + 4 (fp32 grad) + 8 (AdamW) = 16 B,
  plus the bf16 casts of the weights of the forward being run (autocast caches them for
  backward, at most 2 B/parameter, freed after it). A persistent bf16 copy costs 2 B more
  for all of training and its bf16 gradients 2 B more again, and needs a copy of every
  weight back into it after each optimizer step;
- speed: both run every matmul in bf16 on the tensor cores; autocast re-casts each weight
  once per forward (reading 4 and writing 2 bytes per parameter), which is < 1% of the
  6·params·tokens FLOPs of a 16k-token micro-batch; reductions (softmax, norms) stay fp32.
float16 compute is treated the same way but without loss scaling; prefer bfloat16.
Checkpoints hold the fp32 masters themselves, with the compute dtype in `config.json`
(`trainer.checkpoints.local`): what a resume must restore bit for bit.
"""

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

HALF = (torch.bfloat16, torch.float16)
MASTER_DTYPE = torch.float32
"""What the policy's parameters (and so its optimizer state and checkpoints) are held in."""


def autocast_dtype(model: nn.Module, compute: torch.dtype) -> torch.dtype | None:
    """`compute` when the model's parameters are wider masters of it, else None."""
    first = next(model.parameters(), None)
    if compute in HALF and first is not None and first.dtype == torch.float32:
        return compute
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast to `dtype` on `device`; a no-op for None (the model computes as stored)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)
