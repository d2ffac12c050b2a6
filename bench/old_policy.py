"""The policy update with π_old from a separate no-grad pass against π_old from the update's
own forward (`trainer.rl.update.single_pass`), on SmolLM2-135M, fp32, CPU, one thread.

    python bench/old_policy.py [--repeats 4]

The batch is the bench shape of `bench/vs_trl.py` (4 prompts x 8 samples, 12 prompt and
16 response tokens, one micro-batch of 32). The two variants alternate (the first of each
round alternates too); prints the median of each and the ratio separate / shortcut.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import AutoModelForCausalLM

from trainer.data.builtins import resolve
from trainer.engines import Completion
from trainer.rl.batch import RolloutBatch, make_batch
from trainer.rl.update import (
    SkipGuard,
    batched_logprobs,
    old_policy_logprobs,
    policy_update,
)
from trainer.spec import TrainSpec

PROMPTS, GROUP, PROMPT_LEN, RESPONSE_LEN = 4, 8, 12, 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, batch, spec = bench_update()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def separate() -> None:
        old = batched_logprobs(model, batch, PROMPTS * GROUP, 1.0)
        policy_update(model, optimizer, batch, old, None, spec, SkipGuard(3))

    def shortcut() -> None:
        old = old_policy_logprobs(model, batch, spec)
        policy_update(model, optimizer, batch, old, None, spec, SkipGuard(3))

    variants: dict[str, Callable[[], None]] = {"separate": separate, "shortcut": shortcut}
    shortcut()  # warm-up
    times = alternating_times(variants, args.repeats)
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:9s} update {statistics.median(values):.3f} s (median; runs {runs})")
    ratio = statistics.median(times["separate"]) / statistics.median(times["shortcut"])
    print(f"separate / shortcut = {ratio:.2f}x")


def alternating_times(
    variants: dict[str, Callable[[], None]], repeats: int
) -> dict[str, list[float]]:
    """Seconds of each variant per round, the order reversed every other round so that
    drift in the machine's load falls on every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(repeats):
        order = list(variants) if round_index % 2 == 0 else list(reversed(variants))
        for name in order:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return times


def bench_update() -> tuple[Any, RolloutBatch, TrainSpec]:
    """SmolLM2-135M in training mode, the bench batch and a one-pass spec (also
    `bench/update_speedups.py`'s)."""
    model = AutoModelForCausalLM.from_pretrained(resolve("smollm2-135m"), dtype=torch.float32)
    model.train()
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(100, 40000, (PROMPT_LEN,), generator=gen).tolist()] * PROMPTS
    completions = [
        Completion(
            prompt_index=i // GROUP,
            token_ids=torch.randint(100, 40000, (RESPONSE_LEN,), generator=gen).tolist(),
            logprobs=[-1.0] * RESPONSE_LEN,
            finish_reason="length",
        )
        for i in range(PROMPTS * GROUP)
    ]
    advantages = torch.linspace(-1.0, 1.0, len(completions))
    batch = make_batch(prompts, completions, advantages, 0, torch.device("cpu"))
    spec = TrainSpec.model_validate(
        {
            "model": {"path": "unused"},
            "dataset": {"path": "unused.jsonl"},
            "algorithm": {"group_size": GROUP},
            "optim": {
                "prompts_per_step": PROMPTS,
                "mini_batch_prompts": PROMPTS,
                "micro_batch_size": PROMPTS * GROUP,
                "lr": 1e-6,
            },
        }
    )
    return model, batch, spec


if __name__ == "__main__":
    main()
