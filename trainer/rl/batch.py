"""Rollouts as the padded tensors the update and the rank group share.

Its own module so that `trainer.rl.update` and `trainer.distributed.group` both depend on it, not
on each other.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from trainer.engines.base import Completion


@dataclass(frozen=True)
class RolloutBatch:
    """N sequences (prompt + response), right-padded; `[N, T]` tensors cover responses."""

    input_ids: Tensor  # [N, L]
    attention_mask: Tensor  # [N, L]
    prompt_lens: Tensor  # [N]
    response_ids: Tensor  # [N, T]
    response_mask: Tensor  # [N, T] bool
    rollout_logprobs: Tensor  # [N, T]
    advantages: Tensor  # [N]

    def rows(self, index: slice) -> "RolloutBatch":
        """A slice of sequences; the prompt+response columns trimmed to its longest one."""
        part = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        width = int(part["attention_mask"].sum(dim=1).max())
        part["input_ids"] = part["input_ids"][:, :width]
        part["attention_mask"] = part["attention_mask"][:, :width]
        return RolloutBatch(**part)


def make_batch(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Completion],
    advantages: Tensor,
    pad_token_id: int,
    device: torch.device,
) -> RolloutBatch:
    """One row per completion; `prompts[c.prompt_index]` is its prompt."""
    seqs = [list(prompts[c.prompt_index]) + c.token_ids for c in completions]
    width = max(len(s) for s in seqs)
    resp_width = max(1, max(len(c.token_ids) for c in completions))
    n = len(completions)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    response_ids = torch.full((n, resp_width), pad_token_id, dtype=torch.long)
    rollout_logprobs = torch.zeros((n, resp_width))
    for i, (seq, c) in enumerate(zip(seqs, completions, strict=True)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention_mask[i, : len(seq)] = 1
        response_ids[i, : len(c.token_ids)] = torch.tensor(c.token_ids, dtype=torch.long)
        rollout_logprobs[i, : len(c.logprobs)] = torch.tensor(c.logprobs)
    lengths = torch.tensor([len(c.token_ids) for c in completions])
    batch = RolloutBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        prompt_lens=torch.tensor([len(prompts[c.prompt_index]) for c in completions]),
        response_ids=response_ids,
        response_mask=torch.arange(resp_width)[None, :] < lengths[:, None],
        rollout_logprobs=rollout_logprobs,
        advantages=advantages.float(),
    )
    return RolloutBatch(**{f.name: getattr(batch, f.name).to(device) for f in fields(batch)})
