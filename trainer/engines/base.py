"""The rollout-engine interface: generate n samples per prompt, accept new weights.

Everything outside `trainer/engines/` talks to engines only through this interface,
so the loop, evaluation and workers never know whether vLLM or HF is underneath.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SamplingConfig:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None = None
    """Seeds the call: equal configs give equal completions. Prompts still sample
    independently of each other (the vLLM engine derives a seed per prompt)."""


@dataclass(frozen=True)
class EngineOptions:
    """What any engine needs to start, independent of train or eval specs.

    Train and eval jobs both fill one in and call `trainer.engines.build_engine`, so the
    choice between engines lives in the registry alone.
    """

    model_path: str
    """HF id or directory: the weights vLLM (or an HF engine without `model`) loads."""
    revision: str | None = None
    dtype: str = "auto"
    """torch dtype name, or "auto": bfloat16 on GPU, float32 on CPU."""
    device: str = "cpu"
    """Where an HF engine loads its own model, and what `dtype: auto` resolves against."""
    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    enable_sleep_mode: bool = False
    seed: int = 0
    batch_size: int = 64
    """HF engine: prompts generated together (memory bound)."""
    model: Any = None
    """An already-loaded HF model for the HF engine to share (the trainer's live policy)."""
    tokenizer: Any = None
    """An already-loaded tokenizer (else loaded from `model_path`) for the special ids."""
    own_process: bool = False
    """vLLM: run the engine core in a child process, outside this process's
    `torch.distributed` world (a torchrun rank's; see `trainer.engines.vllm`)."""


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
