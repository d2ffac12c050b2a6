"""Rollout engines behind one interface (`base.RolloutEngine`); `ENGINES` is the registry.

Each factory takes the policy module (the HF engine shares it; vLLM loads its own copy
from `model_path`), its tokenizer's ids and the run's spec, so callers never branch on
the engine's name.
"""

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from trainer.engines.base import Completion, RolloutEngine, SamplingConfig
from trainer.spec import TrainSpec

if TYPE_CHECKING:
    from torch import nn

EngineFactory = Callable[["nn.Module", str, Any, TrainSpec], RolloutEngine]
"""(policy, model_path, tokenizer, spec) -> engine."""


def _hf(policy: "nn.Module", model_path: str, tokenizer: Any, spec: TrainSpec) -> RolloutEngine:
    from trainer.engines.hf import HFEngine

    return HFEngine(
        policy,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        batch_size=spec.rollout.batch_size,
    )


def _vllm(policy: "nn.Module", model_path: str, tokenizer: Any, spec: TrainSpec) -> RolloutEngine:
    from trainer.engines.vllm import VLLMEngine

    return VLLMEngine(
        model_path,
        dtype=str(next(policy.parameters()).dtype).removeprefix("torch."),
        gpu_memory_utilization=spec.rollout.gpu_memory_utilization,
        tensor_parallel_size=spec.rollout.tensor_parallel_size,
        max_model_len=spec.rollout.max_prompt_tokens + spec.rollout.max_response_tokens,
        enable_sleep_mode=spec.rollout.enable_sleep_mode,
        seed=spec.seed,
    )


ENGINES: Mapping[str, EngineFactory] = {"hf": _hf, "vllm": _vllm}


def build_engine(
    name: str, policy: "nn.Module", model_path: str, tokenizer: Any, spec: TrainSpec
) -> RolloutEngine:
    factory = ENGINES.get(name)
    if factory is None:
        raise ValueError(f"unknown rollout engine {name!r}; choose one of {sorted(ENGINES)}")
    return factory(policy, model_path, tokenizer, spec)


__all__ = ["ENGINES", "Completion", "RolloutEngine", "SamplingConfig", "build_engine"]
