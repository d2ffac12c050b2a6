"""bench/gpu_proof.py's parts: model, batch, FLOP count, device peak and the timed checks."""

import importlib.util
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM

from bench.train_step import plain_logprobs
from trainer.data.tiny import tiny_config
from trainer.distributed.group import DistEnv, shard_policy
from trainer.engines import Completion
from trainer.precision import autocast
from trainer.rl.batch import make_batch
from trainer.rl.optim import build_optimizer
from trainer.rl.step_sync import StepSync
from trainer.rl.update import SkipGuard, batched_logprobs, policy_update
from trainer.spec import TrainSpec

PEAK_BF16 = (
    ("H200 NVL", 835e12),
    ("H200", 989e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM (HBM3)
    ("A100", 312e12),
)
"""Dense (not 2:4 sparse) bf16 tensor-core peak, FLOP/s, from NVIDIA's datasheets; the
first name contained in `torch.cuda.get_device_name()` wins."""
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


@dataclass(frozen=True)
class Flops:
    """FLOPs of one pass over a batch, counted from what the code computes."""

    body: int
    """Matmul parameters outside the lm_head (the embedding lookup does no matmul)."""
    head: int
    layers: int
    hidden: int

    @classmethod
    def of(cls, model: torch.nn.Module) -> "Flops":
        cfg = model.config
        head = cfg.vocab_size * cfg.hidden_size
        params = sum(p.numel() for p in model.parameters())
        untied = 0 if cfg.tie_word_embeddings else head  # counted in `params` twice then
        return cls(params - head - untied, head, cfg.num_hidden_layers, cfg.hidden_size)

    def count(self, tokens: int, head_tokens: int, seq_len: int, backward: bool) -> float:
        """2 FLOPs per parameter and token forward (x3 with the backward); causal
        attention 2 * layers * hidden * seq per token (QK^T and AV over half the keys)."""
        forward = (
            2 * self.body * tokens
            + 2 * self.head * head_tokens
            + 2 * self.layers * self.hidden * seq_len * tokens
        )
        return forward * (3 if backward else 1)


def peak_for(device_name: str) -> float | None:
    """Dense bf16 peak of a device by its CUDA name; None for one not in `PEAK_BF16`."""
    return next((peak for key, peak in PEAK_BF16 if key in device_name), None)


def peak_bf16(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    return name, peak_for(name)


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
    device_name, peak = peak_bf16(device)
    if peak is not None:
        line += f"  MFU {flops / seconds / peak:6.1%} of {peak / 1e12:.0f} TFLOP/s"
    elif device.type == "cuda":
        line += f"  (no dense bf16 peak known for {device_name}: no MFU)"
    print(line)


def solo_part(model, spec: TrainSpec, batch, device: torch.device, size: Size) -> None:  # type: ignore[no-untyped-def]
    """Single device: fp32 masters + bf16 autocast, the loop's own calls."""
    reset_peak_memory(device)
    optimizer = build_optimizer(model, spec.optim)
    guard, dtype = SkipGuard(spec.optim.max_consecutive_skips), torch.bfloat16
    tokens, scored = int(batch.attention_mask.sum()), int(batch.response_mask.sum())
    count, seq = Flops.of(model), size.prompt_len + size.response_len

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
    report("fused", fused_s, tokens, count.count(tokens, scored, seq, backward=False), device)
    report("naive", naive_s, tokens, count.count(tokens, tokens, seq, backward=False), device)
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
    report("update", min(times), tokens, count.count(tokens, scored, seq, backward=True), device)
    moved = moved_fraction(model, update)
    print(f"  master weights moved by one update at lr 1e-6: {moved:.2%}")
    check(moved > 0.9, "one update at lr 1e-6 moves > 90% of the master weights")
    print(f"  peak memory: {peak_memory_gb(device):.2f} GB")
    optimizer.state.clear()


def fsdp_part(model, spec: TrainSpec, batch, device: torch.device, size: Size) -> None:  # type: ignore[no-untyped-def]
    """A 1-process FSDP2 group: the torchrun path's sharding, reduction and optimizer."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    store = torch.distributed.TCPStore("127.0.0.1", 0, world_size=1, is_master=True)
    torch.distributed.init_process_group(backend, store=store, rank=0, world_size=1)
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
        flops = Flops.of(model).count(
            tokens, int(batch.response_mask.sum()), batch.input_ids.shape[1], backward=True
        )
        report("update", seconds, tokens, flops, device)
        moved = moved_fraction(policy, update)
        print(f"  sharded fp32 master weights moved at lr 1e-6: {moved:.2%}")
        check(moved > 0.9, "FSDP2: one update at lr 1e-6 moves > 90% of the master weights")
        print(f"  peak memory: {peak_memory_gb(device):.2f} GB")
    finally:
        torch.distributed.destroy_process_group()


def run(smoke: bool) -> list[str]:
    """Every part on CUDA (or the CPU with `smoke`); the checks that failed."""
    size = SMOKE if smoke else FULL
    device = torch.device("cpu" if smoke else "cuda")
    torch.manual_seed(0)
    spec = train_spec(size)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            tiny_config(size.vocab, **size.dims), dtype=torch.bfloat16
        )
    model = model.float()  # the single-device path loads the policy as fp32 master weights
    params = sum(p.numel() for p in model.parameters())
    device_name, _ = peak_bf16(device)
    print(
        f"model: Qwen2 {params / 1e6:.1f}M params, random init, {device_name}, "
        f"torch {torch.__version__}"
    )
    batch = random_batch(size, device)
    solo_part(model, spec, batch, device, size)
    fsdp_part(model, spec, batch, device, size)
    del model, batch
    if importlib.util.find_spec("vllm") is None:
        print("[4] vLLM not importable here: no engine part")
    else:
        from bench.gpu_proof_vllm import vllm_part

        vllm_part(
            size.dims,
            size.rows,
            size.prompt_len,
            size.response_len,
            device,
            check,
            lambda fn: timed(device, fn),
        )
    return FAILURES
