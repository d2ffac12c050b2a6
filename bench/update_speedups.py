"""The policy update with each of its CPU speed-ups switched off, on SmolLM2-135M, fp32, CPU.

    python bench/update_speedups.py [--repeats 3] [--threads 1]

The batch and spec are `bench/old_policy.py`'s (4 prompts x 8 samples, 12 prompt and 16
response tokens, one micro-batch, π_old from the update's own forward). Variants, each
with its own optimizer on the same model, alternating (the order reverses every round):
- `before`: the fused log-prob kernel recomputes the logits in backward, and AdamW is
  torch's per-tensor loop (what the trainer did before these speed-ups);
- `kept logits`: forward keeps the logits for backward (`trainer.rl.logprobs.keeps_logits`);
- `+ fused AdamW`: also the fused AdamW kernel (`trainer.rl.optim.build_optimizer`);
- `+ cache slices`: also the softmax maths over cache-sized row slices
  (`trainer.rl.logprobs.SLICE_BYTES`), i.e. what the trainer runs now.
Prints each variant's median update time and the ratio to `before`.
"""

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from old_policy import alternating_times, bench_update

import trainer.rl.logprobs as logprobs
from trainer.rl.optim import build_optimizer
from trainer.rl.update import SkipGuard, policy_update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, batch, spec = bench_update()
    keeps, slice_bytes = logprobs.keeps_logits, logprobs.SLICE_BYTES
    loop_adamw = _loop_adamw(model, spec.optim.weight_decay)

    def variant(
        keep: bool, optimizer: torch.optim.Optimizer, slices: bool = False
    ) -> Callable[[], None]:
        def run() -> None:
            logprobs.keeps_logits = keeps if keep else lambda *_: False
            logprobs.SLICE_BYTES = slice_bytes if slices else 1 << 40  # 1 << 40: whole chunks
            policy_update(model, optimizer, batch, None, None, spec, SkipGuard(3))

        return run

    fused_adamw = build_optimizer(model, spec.optim)
    variants = {
        "before": variant(False, loop_adamw),
        "kept logits": variant(True, loop_adamw),
        "+ fused AdamW": variant(True, fused_adamw),
        "+ cache slices": variant(True, fused_adamw, slices=True),
    }
    for run in variants.values():  # warm-up, and every optimizer's state allocated
        run()
    times = alternating_times(variants, args.repeats)
    print(f"threads {args.threads}, load average {os.getloadavg()}")
    base = statistics.median(times["before"])
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        median = statistics.median(values)
        print(f"{name:14s} update {median:.3f} s  before/this {base / median:.2f}x  (runs {runs})")


def _loop_adamw(model: torch.nn.Module, weight_decay: float) -> torch.optim.AdamW:
    """The optimizer `build_optimizer` made before: same groups, torch's per-tensor loop."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=1e-6, foreach=False)


if __name__ == "__main__":
    main()
