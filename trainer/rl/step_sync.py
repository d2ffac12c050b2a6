"""What one update step needs from a torchrun group: this rank's slice of each mini-batch,
the global token and sequence counts, global sums (why the sums give exactly the
single-process gradient: `trainer.distributed.group`).

It lives in `rl/`, not in `distributed/`, because it speaks in rollout batches: the group
primitives below it know nothing of RL.
"""

import math
from collections.abc import Iterator
from dataclasses import fields

import torch
import torch.distributed as dist
from torch import Tensor

from trainer.distributed.group import DistEnv
from trainer.losses.aggregation import step_counts
from trainer.rl.batch import RolloutBatch


class StepSync:
    """What the update needs from the group: its slice, the global counts, global sums."""

    def __init__(self, env: DistEnv, device: torch.device) -> None:
        self.env = env
        self.device = device

    def local_rows(self, mini_rows: int) -> int:
        """Rows of one mini-batch on each rank (every rank the same, padding included)."""
        return math.ceil(mini_rows / self.env.world_size)

    def shard(self, batch: RolloutBatch, mini_rows: int) -> RolloutBatch:
        """This rank's contiguous slice of every mini-batch, padded to `local_rows`."""
        return take_rows(batch, list(self.shard_index(len(batch.advantages), mini_rows)))

    def shard_index(self, total: int, mini_rows: int) -> Iterator[int | None]:
        """Row indices of this rank's slice; None marks a padding row."""
        per_rank = self.local_rows(mini_rows)
        for start in range(0, total, mini_rows):
            stop = min(start + mini_rows, total)
            first = start + self.env.rank * per_rank
            for i in range(first, first + per_rank):
                yield i if i < stop else None

    def counts(self, response_mask: Tensor) -> tuple[Tensor, Tensor]:
        """(tokens, sequences) of this mini-batch summed over all ranks."""
        tokens, seqs = step_counts(response_mask)
        both = torch.stack([tokens, seqs]).to(self.device, torch.float64)
        dist.all_reduce(both)
        return both[0], both[1]

    def total(self, value: float) -> float:
        """`value` summed over ranks (NaN on one rank makes the total NaN everywhere)."""
        box = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(box)
        return float(box)


def take_rows(batch: RolloutBatch, index: list[int | None]) -> RolloutBatch:
    """Rows `index` of `batch`; a None row copies row 0 with no valid response token."""
    rows = torch.tensor([0 if i is None else i for i in index], device=batch.advantages.device)
    part = {f.name: getattr(batch, f.name).index_select(0, rows) for f in fields(batch)}
    padding = torch.tensor([i is None for i in index], device=rows.device)
    part["response_mask"] = part["response_mask"] & ~padding[:, None]
    part["advantages"] = part["advantages"].masked_fill(padding, 0.0)
    return RolloutBatch(**part)
