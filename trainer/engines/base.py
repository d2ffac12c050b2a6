"""The rollout-engine interface: generate n samples per prompt, accept new weights.

Everything outside `trainer/engines/` talks to engines only through this interface,
so the loop, evaluation and workers never know whether vLLM or HF is underneath.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SamplingConfig:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    """One sampled response to one prompt."""

    prompt_index: int
    token_ids: list[int]
    """Response tokens only (no prompt), including the EOS token when it stopped."""
    logprobs: list[float]
    """The engine's log-prob of each sampled token (same length as token_ids)."""
    finish_reason: Literal["stop", "length"]


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig
    ) -> list[Completion]:
        """Return `sampling.n` completions per prompt, grouped by prompt in prompt order."""
        ...

    def update_weights(self, named_tensors: Iterable[tuple[str, "torch.Tensor"]]) -> None:
        """Load the trainer's current weights (HF parameter names)."""
        ...

    def sleep(self) -> None:
        """Release GPU memory while the update runs (no-op where unsupported)."""
        ...

    def wake_up(self) -> None:
        """Re-acquire what `sleep` released."""
        ...
