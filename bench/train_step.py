"""Throughput of one training step's two halves: rollout (HF engine) and policy update.

    python bench/train_step.py [--configs tiny,0.5b] [--batch 8] [--response-len 32]

For each config (the tiny test model, and a random-init Qwen2.5-0.5B-shaped model):
rollout tokens/s, update tokens/s (fused lm_head log-probs + DGPO loss + backward +
AdamW), and peak memory. Baseline, measured in the same run: the same update with a
plain full-logits forward (`model(...).logits` -> log_softmax), the usual approach.
On CUDA the models run in bf16 and the update's MFU is printed (H100 dense bf16 peak).
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import Qwen2ForCausalLM

from trainer.data.tiny import tiny_config
from trainer.engines import Completion, SamplingConfig
from trainer.engines.hf import HFEngine
from trainer.losses.registry import compute_policy_loss
from trainer.rl.batch import RolloutBatch, make_batch
from trainer.rl.optim import build_optimizer
from trainer.rl.update import response_logprobs
from trainer.spec import OptimConfig, PolicyLossConfig

H100_BF16_PEAK = 989e12
QWEN_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}


def build(name: str, device: torch.device, dtype: torch.dtype) -> Qwen2ForCausalLM:
    config = tiny_config(259) if name == "tiny" else tiny_config(151936, **QWEN_05B)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config).to(device=device, dtype=dtype)


def plain_logprobs(model: Qwen2ForCausalLM, batch: RolloutBatch) -> torch.Tensor:
    """Baseline: full `[B, L, V]` logits, then log_softmax and gather."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    mask = batch.response_mask
    steps = torch.arange(mask.shape[1], device=mask.device)
    positions = (batch.prompt_lens[:, None] - 1 + steps[None, :]).clamp(max=logits.shape[1] - 1)
    picked = logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1]))
    return torch.log_softmax(picked.float(), -1).gather(-1, batch.response_ids[..., None])[..., 0]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_update(model, optimizer, batch: RolloutBatch, fused: bool, repeats: int) -> float:  # type: ignore[no-untyped-def]
    device = batch.input_ids.device
    cfg = PolicyLossConfig()
    old = torch.zeros(batch.response_mask.shape, device=device) - 2.0
    adv = batch.advantages[:, None].expand_as(old)
    best = float("inf")
    for _ in range(repeats + 1):  # the first is warm-up
        sync(device)
        t0 = time.perf_counter()
        logprobs = (
            response_logprobs(model, batch, 1.0)[0] if fused else plain_logprobs(model, batch)
        )
        loss, _ = compute_policy_loss("dgpo", logprobs, old, adv, batch.response_mask, cfg)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB


def bench(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    model = build(name, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    engine = HFEngine(model, eos_token_id=-1, pad_token_id=0, batch_size=args.batch)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, vocab, (args.prompt_len,), generator=gen).tolist()] * args.batch
    sampling = SamplingConfig(n=1, temperature=1.0, top_p=1.0, max_tokens=args.response_len, seed=0)
    engine.generate(prompts[:1], SamplingConfig(1, 1.0, 1.0, 2, 0))  # warm-up
    sync(device)
    t0 = time.perf_counter()
    completions: list[Completion] = engine.generate(prompts, sampling)
    sync(device)
    rollout_s = time.perf_counter() - t0
    new_tokens = sum(len(c.token_ids) for c in completions)

    advantages = torch.randn(len(completions), generator=gen)
    batch = make_batch(prompts, completions, advantages, 0, device)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-6))
    tokens = int(batch.attention_mask.sum())
    fused_s = time_update(model, optimizer, batch, True, args.repeats)
    plain_s = time_update(model, optimizer, batch, False, args.repeats)
    print(
        f"[{name}] params {params / 1e6:.1f}M  dtype {str(dtype)[6:]}  batch {args.batch} x "
        f"({args.prompt_len} prompt + {args.response_len} response) tokens"
    )
    print(f"  rollout : {new_tokens / rollout_s:10.1f} tokens/s  ({rollout_s:.2f}s)")
    print(f"  update  : {tokens / fused_s:10.1f} tokens/s  ({fused_s:.2f}s, fused lm_head)")
    print(
        f"  baseline: {tokens / plain_s:10.1f} tokens/s  ({plain_s:.2f}s, full logits)  "
        f"ratio fused/baseline {plain_s / fused_s:.2f}x"
    )
    if device.type == "cuda":
        flops = 6 * params * tokens  # forward + backward, dense
        print(f"  update MFU: {flops / fused_s / H100_BF16_PEAK:.1%} of H100 bf16 peak")
    print(f"  peak memory: {peak_memory_gb(device):.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,0.5b")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--response-len", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for name in args.configs.split(","):
        bench(name, args, device, dtype)


if __name__ == "__main__":
    main()
