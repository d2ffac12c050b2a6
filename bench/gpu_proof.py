"""One GPU proof: the project's own update path on a Qwen2.5-1.5B-shaped model, one H200.

    python bench/gpu_proof.py            # CUDA: ~5 min on one H200 (PyTorch + transformers)
    python bench/gpu_proof.py --smoke    # CPU, tiny model, < 1 min (tests/test_gpu_proof.py)

Needs nothing beyond the project's own dependencies (no vLLM, no hub: the model is a
random-init Qwen2 of the 1.5B shape built offline). Three parts, each timed:
1. single-device training: bf16 autocast over fp32 masters (`Solo.prepare`), the fused
   log-prob pass (`batched_logprobs`) and `policy_update` at 8 × 2048 tokens;
2. the fused log-prob pass against the naive full-logits baseline, in the same run
   (speed ratio and agreement);
3. a 1-process FSDP2 step (`shard_policy`, NCCL on GPU, gloo in --smoke), bf16 params.
Prints tokens/s, MFU against 790 TFLOP/s (H200 dense bf16, as the issue sets it) and
peak memory. Checks, exiting 1 if any fails: optimizer parameters and AdamW state are
fp32; one update at lr 1e-6 moves > 90% of the master weights (both paths); the fused
and naive log-probs agree; every loss is finite.
"""

import argparse
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import AutoModelForCausalLM

from bench.train_step import plain_logprobs
from trainer.data.tiny import tiny_config
from trainer.distributed.group import DistEnv, shard_policy
from trainer.engines import Completion
from trainer.precision import autocast
from trainer.rl.batch import make_batch
from trainer.rl.optim import build_optimizer
from trainer.rl.ranks import Solo
from trainer.rl.step_sync import StepSync
from trainer.rl.update import SkipGuard, batched_logprobs, policy_update
from trainer.spec import TrainSpec

PEAK_FLOPS = 790e12
QWEN_15B = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}


@dataclass(frozen=True)
class Size:
    vocab: int
    dims: dict[str, int | bool]
    rows: int
    prompt_len: int
    response_len: int
    micro_batch: int
    steps: int


FULL = Size(151936, QWEN_15B, rows=8, prompt_len=512, response_len=1536, micro_batch=2, steps=3)
SMOKE = Size(259, {}, rows=8, prompt_len=16, response_len=48, micro_batch=4, steps=2)
FAILURES: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  check {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILURES.append(what)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, fn: Callable[[], object]) -> tuple[float, object]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def reset_peak_memory(device: torch.device) -> None:
    """Per-part peaks on CUDA; the CPU figure (peak RSS) is the process's so far."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB


def train_spec(size: Size) -> TrainSpec:
    """One optimizer step per update over all rows (one group), lr 1e-6, no decay."""
    return TrainSpec.model_validate(
        {
            "model": {"path": "random-init", "dtype": "bfloat16"},
            "dataset": {"path": "unused.jsonl"},
            "algorithm": {"group_size": size.rows},
            "optim": {
                "lr": 1e-6,
                "weight_decay": 0.0,
                "prompts_per_step": 1,
                "mini_batch_prompts": 1,
                "micro_batch_size": size.micro_batch,
            },
        }
    )


def random_batch(size: Size, device: torch.device):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, size.vocab, (size.prompt_len,), generator=gen).tolist()
    completions = [
        Completion(
            0,
            torch.randint(3, size.vocab, (size.response_len,), generator=gen).tolist(),
            [-1.0] * size.response_len,
            "length",
        )
        for _ in range(size.rows)
    ]
    advantages = torch.randn(size.rows, generator=gen)
    return make_batch([prompt], completions, advantages, 0, device)


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """Forward + backward: 6 per parameter (tied head counted once, as it is one matmul)
    plus causal attention, 6 · layers · hidden · seq."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    return 6 * params + 6 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


def moved_fraction(model: torch.nn.Module, step: Callable[[], dict[str, float]]) -> float:
    before = [p.detach().clone() for p in model.parameters()]
    metrics = step()
    check(math.isfinite(metrics["loss/total"]), f"loss finite ({metrics['loss/total']:.4g})")
    moved = sum(
        int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before, strict=True)
    )
    return moved / sum(b.numel() for b in before)


def report(name: str, seconds: float, tokens: int, flops: float, device: torch.device) -> None:
    line = f"  {name}: {tokens / seconds:12.1f} tokens/s  ({seconds:.3f} s)"
    if device.type == "cuda":
        line += f"  MFU {flops * tokens / seconds / PEAK_FLOPS:6.1%} of 790 TFLOP/s"
    print(line)


def solo_part(model, spec: TrainSpec, batch, device: torch.device, size: Size) -> None:  # type: ignore[no-untyped-def]
    """Single device: fp32 masters + bf16 autocast, the loop's own calls."""
    reset_peak_memory(device)
    optimizer = build_optimizer(model, spec.optim)
    guard, dtype = SkipGuard(spec.optim.max_consecutive_skips), torch.bfloat16
    tokens = int(batch.attention_mask.sum())
    flops = flops_per_token(model, size.prompt_len + size.response_len)

    def old_logprobs() -> torch.Tensor:
        return batched_logprobs(model, batch, size.micro_batch, 1.0, compute_dtype=dtype)

    def naive_logprobs() -> torch.Tensor:
        with torch.no_grad(), autocast(device, dtype):
            parts = [
                plain_logprobs(model, batch.rows(slice(i, i + size.micro_batch)))
                for i in range(0, size.rows, size.micro_batch)
            ]
        return torch.cat(parts) * batch.response_mask

    def update() -> dict[str, float]:
        return policy_update(model, optimizer, batch, old, None, spec, guard, compute_dtype=dtype)

    old = old_logprobs()  # warm-up
    fused_s, old = timed(device, old_logprobs)
    naive_s, naive = timed(device, naive_logprobs)
    gap = float((old - naive).abs().max())  # type: ignore[operator]
    print("[1] log-prob pass (no grad), fused lm_head vs naive full logits:")
    report("fused", fused_s, tokens, flops / 3, device)
    report("naive", naive_s, tokens, flops / 3, device)
    print(f"  ratio naive/fused time: {naive_s / fused_s:.2f}x")
    check(gap < 0.05, f"fused and naive log-probs agree (max |diff| {gap:.2e} < 0.05)")

    update()  # warm-up: AdamW state is allocated here
    params = [p for group in optimizer.param_groups for p in group["params"]]
    states = [t for s in optimizer.state.values() for t in s.values() if t.dim() > 0]
    check(all(p.dtype == torch.float32 for p in params), "optimizer parameters are fp32")
    check(bool(states) and all(t.dtype == torch.float32 for t in states), "AdamW state is fp32")
    times = [timed(device, update)[0] for _ in range(size.steps)]
    print(
        f"[2] policy_update, bf16 autocast over fp32 masters, {size.rows} x "
        f"{size.prompt_len + size.response_len} tokens:"
    )
    report("update", min(times), tokens, flops, device)
    moved = moved_fraction(model, update)
    print(f"  master weights moved by one update at lr 1e-6: {moved:.2%}")
    check(moved > 0.9, "one update at lr 1e-6 moves > 90% of the master weights")
    print(f"  peak memory: {peak_memory_gb(device):.2f} GB")
    optimizer.state.clear()


def fsdp_part(model, spec: TrainSpec, batch, device: torch.device, size: Size) -> None:  # type: ignore[no-untyped-def]
    """A 1-process FSDP2 group: the torchrun path's sharding, reduction and optimizer."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.distributed.init_process_group(backend, rank=0, world_size=1)
    reset_peak_memory(device)
    try:
        policy = shard_policy(
            model, device, 1, param_dtype=torch.bfloat16 if device.type == "cuda" else None
        )
        optimizer = build_optimizer(policy, spec.optim)
        sync_ = StepSync(DistEnv(0, 1, 0), device)
        guard = SkipGuard(spec.optim.max_consecutive_skips)
        old = batched_logprobs(policy, batch, size.micro_batch, 1.0)
        tokens = int(batch.attention_mask.sum())

        def update() -> dict[str, float]:
            return policy_update(policy, optimizer, batch, old, None, spec, guard, sync_)

        update()  # warm-up
        seconds, _ = timed(device, update)
        print(f"[3] FSDP2 step, 1 process, {backend}:")
        report("update", seconds, tokens, flops_per_token(model, batch.input_ids.shape[1]), device)
        moved = moved_fraction(policy, update)
        print(f"  sharded fp32 master weights moved at lr 1e-6: {moved:.2%}")
        check(moved > 0.9, "FSDP2: one update at lr 1e-6 moves > 90% of the master weights")
        print(f"  peak memory: {peak_memory_gb(device):.2f} GB")
    finally:
        torch.distributed.destroy_process_group()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, gloo")
    args = parser.parse_args()
    size = SMOKE if args.smoke else FULL
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke on CPU")
        return 2
    torch.manual_seed(0)
    spec = train_spec(size)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            tiny_config(size.vocab, **size.dims), dtype=torch.bfloat16
        )
    model = Solo().prepare(model, spec)  # the single-device path: fp32 master weights
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: Qwen2 {params / 1e6:.1f}M params, random init, {device.type}, "
        f"torch {torch.__version__}"
    )
    batch = random_batch(size, device)
    solo_part(model, spec, batch, device, size)
    fsdp_part(model, spec, batch, device, size)
    print("all checks passed" if not FAILURES else f"FAILED: {FAILURES}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
