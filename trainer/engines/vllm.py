"""Rollouts with a colocated `vllm.LLM` (same GPU as training), imported lazily.

Targets the vLLM versions of the `[vllm]` extra (V1 engine, `LLM.collective_rpc` with a
callable, `LLM.sleep(level=1)` / `LLM.wake_up()`, `LLM.reset_prefix_cache()`). Weights
are pushed each step by running the model runner's own `model.load_weights` on every
worker, which understands HF parameter names (it fuses q/k/v and gate/up itself); the
prefix cache is then reset, since cached KV blocks were computed by the old weights.
It cannot run without a GPU, so it stays this thin; everything else is engine-agnostic.
"""

import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from trainer.engines.base import Completion, SamplingConfig


def _import_vllm() -> Any:
    # In-process engine core (no extra process) so the weights can be handed over directly.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "rollout.engine 'vllm' needs vLLM on a GPU machine: `pip install 'dgpo[vllm]'` "
            "(or use rollout.engine 'hf')"
        ) from exc
    return vllm


def _load_weights(worker: Any, weights: list[tuple[str, torch.Tensor]]) -> None:
    """Runs inside each vLLM worker (`collective_rpc` passes the worker first)."""
    worker.model_runner.model.load_weights(weights=weights)


class VLLMEngine:
    def __init__(
        self,
        model_path: str,
        *,
        revision: str | None = None,
        dtype: str,
        gpu_memory_utilization: float,
        tensor_parallel_size: int,
        max_model_len: int,
        enable_sleep_mode: bool,
        seed: int,
    ) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        self.enable_sleep_mode = enable_sleep_mode
        self.llm = vllm.LLM(
            model=model_path,
            revision=revision,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            enable_sleep_mode=enable_sleep_mode,
            enable_prefix_caching=True,
            seed=seed,
        )
        self._asleep = False

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig
    ) -> list[Completion]:
        self.wake_up()
        params = self._vllm.SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            logprobs=0,  # the sampled token's log-prob only
        )
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        completions = []
        for index, request in enumerate(outputs):
            for sample in request.outputs:
                tokens = list(sample.token_ids)
                logprobs = [
                    step[tok].logprob for step, tok in zip(sample.logprobs, tokens, strict=True)
                ]
                finish = "stop" if sample.finish_reason == "stop" else "length"
                completions.append(Completion(index, tokens, logprobs, finish))
        return completions

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.wake_up()
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        self.llm.collective_rpc(_load_weights, args=(weights,))
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Level 1: weights offloaded to CPU RAM, KV cache discarded, until `wake_up`."""
        if self.enable_sleep_mode and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = True

    def wake_up(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False
