"""Rollout engines behind one interface (`base.RolloutEngine`); `ENGINES` is the registry.

Each factory takes spec-agnostic `EngineOptions`, so the training loop and evaluation
both build engines through `build_engine(name, options)` and never branch on the name.
"""

from collections.abc import Callable, Mapping
from typing import Any

from trainer.engines.base import Completion, EngineOptions, RolloutEngine, SamplingConfig

EngineFactory = Callable[[EngineOptions], RolloutEngine]


def _hf(options: EngineOptions) -> RolloutEngine:
    """Shares `options.model` when given (colocated training), else loads its own copy.

    A shared policy with fp32 master weights generates under autocast to `options.dtype`,
    the precision the trainer computes its log-probs in (`trainer.precision`).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.engines.hf import HFEngine
    from trainer.precision import autocast_dtype

    device = torch.device(options.device)
    dtype = _torch_dtype(options, device)
    model = options.model
    if model is None:
        model = AutoModelForCausalLM.from_pretrained(
            options.model_path, revision=options.revision, dtype=dtype
        ).to(device)
    tokenizer = options.tokenizer or _tokenizer(options)
    eos = tokenizer.eos_token_id
    return HFEngine(
        model,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
        batch_size=options.batch_size,
        compute_dtype=autocast_dtype(model, dtype),
    )


def _vllm(options: EngineOptions) -> RolloutEngine:
    """Always its own copy of the weights, loaded from `options.model_path`."""
    import torch

    from trainer.engines.vllm import VLLMEngine

    return VLLMEngine(
        options.model_path,
        revision=options.revision,
        dtype=str(_torch_dtype(options, torch.device(options.device))).removeprefix("torch."),
        gpu_memory_utilization=options.gpu_memory_utilization,
        tensor_parallel_size=options.tensor_parallel_size,
        max_model_len=options.max_model_len,
        enable_sleep_mode=options.enable_sleep_mode,
        seed=options.seed,
        own_process=options.own_process,
    )


ENGINES: Mapping[str, EngineFactory] = {"hf": _hf, "vllm": _vllm}


def build_engine(name: str, options: EngineOptions) -> RolloutEngine:
    factory = ENGINES.get(name)
    if factory is None:
        raise ValueError(f"unknown rollout engine {name!r}; choose one of {sorted(ENGINES)}")
    return factory(options)


def _torch_dtype(options: EngineOptions, device: Any) -> Any:
    import torch

    if options.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, options.dtype)


def _tokenizer(options: EngineOptions) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(options.model_path, revision=options.revision)


__all__ = [
    "ENGINES",
    "Completion",
    "EngineOptions",
    "RolloutEngine",
    "SamplingConfig",
    "build_engine",
]
