"""DAPO's length handling (arXiv 2503.14476 §3.4), as verl implements it.

- Overlong reward shaping (verl `DAPORewardManager`): a response longer than
  max_len − L_cache loses `factor · (length − (max_len − L_cache)) / L_cache` of reward,
  reaching −factor at max_len; shorter ones are untouched.
- Overlong filtering: truncated responses are masked out of the loss (they still count in
  their group's advantage baseline).
"""

from collections.abc import Sequence
from dataclasses import replace

import torch

from trainer.engines.base import Completion
from trainer.rl.batch import RolloutBatch


def overlong_penalty(length: int, max_len: int, buffer_len: int, factor: float) -> float:
    """The soft penalty (≤ 0) for a response of `length` tokens; 0 when buffer_len is 0."""
    if buffer_len <= 0:
        return 0.0
    exceed = length - (max_len - buffer_len)
    return min(-exceed / buffer_len * factor, 0.0)


def mask_truncated(batch: RolloutBatch, completions: Sequence[Completion]) -> RolloutBatch:
    """The batch with every truncated response's tokens removed from the loss mask."""
    kept = torch.tensor([c.finish_reason != "length" for c in completions])
    mask = batch.response_mask & kept.to(batch.response_mask.device)[:, None]
    return replace(batch, response_mask=mask)
