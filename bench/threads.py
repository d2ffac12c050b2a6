"""Two CPU slots at once: each attempt with its share of the cores vs torch's default.

    python bench/threads.py [--slots 2] [--steps 4] [--hidden 256] [--layers 4]

Starts `--slots` processes at the same time, as a worker with that many slots starts its
attempts' children, each running the same training steps (HF-engine rollout of 8 x 32
tokens, then one DGPO update with AdamW) on a random Qwen2-shaped model. Two settings:

- share: `OMP_NUM_THREADS` = cores // slots (what `workers.cpus` gives each child);
- default (the baseline, measured in the same run): no thread setting, so every process
  starts one torch thread per core, as every child did before.

Prints the median step time of each process under each setting, the ratio
default/share (above 1: the share is faster), and the machine's load average.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.cpus import THREAD_ENV, available_cores


def run_steps(args: argparse.Namespace) -> list[float]:
    """One process's step times (the child side of the bench)."""
    import torch
    from transformers import Qwen2ForCausalLM

    from trainer.data.tiny import tiny_config
    from trainer.engines import SamplingConfig
    from trainer.engines.hf import HFEngine
    from trainer.losses.registry import compute_policy_loss
    from trainer.rl.batch import make_batch
    from trainer.rl.optim import build_optimizer
    from trainer.rl.update import response_logprobs
    from trainer.spec import OptimConfig, PolicyLossConfig

    torch.manual_seed(0)
    dims = {"hidden_size": args.hidden, "intermediate_size": 4 * args.hidden}
    dims |= {"num_hidden_layers": args.layers, "num_attention_heads": args.hidden // 64}
    dims |= {"num_key_value_heads": args.hidden // 64}
    model = Qwen2ForCausalLM(tiny_config(259, **dims))
    engine = HFEngine(model, eos_token_id=-1, pad_token_id=0, batch_size=8)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-6))
    prompts = [torch.randint(3, 259, (32,)).tolist() for _ in range(8)]
    sampling = SamplingConfig(n=1, temperature=1.0, top_p=1.0, max_tokens=32, seed=0)
    times = []
    for _ in range(args.steps + 1):  # the first is warm-up
        t0 = time.perf_counter()
        completions = engine.generate(prompts, sampling)
        batch = make_batch(prompts, completions, torch.randn(len(completions)), 0, "cpu")
        logprobs = response_logprobs(model, batch, 1.0)[0]
        old = logprobs.detach() - 0.01
        adv = batch.advantages[:, None].expand_as(old)
        loss, _ = compute_policy_loss(
            "dgpo", logprobs, old, adv, batch.response_mask, PolicyLossConfig()
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times[1:]


def concurrent(args: argparse.Namespace, threads: int | None) -> list[float]:
    """Median step time of each of `args.slots` processes started together."""
    env = {k: v for k, v in os.environ.items() if k != THREAD_ENV}
    if threads is not None:
        env[THREAD_ENV] = str(threads)
    argv = [sys.executable, __file__, "--child", "--steps", str(args.steps)]
    argv += ["--hidden", str(args.hidden), "--layers", str(args.layers)]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(args.slots)
    ]
    medians = []
    for proc in procs:
        out, _ = proc.communicate()
        assert proc.returncode == 0, f"a bench process failed ({proc.returncode})"
        medians.append(statistics.median(json.loads(out.strip().splitlines()[-1])))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_steps(args)))
        return
    cores = available_cores()
    share = max(1, cores // args.slots)
    print(f"{args.slots} processes at once on {cores} cores, load {os.getloadavg()}")
    default = concurrent(args, None)
    shared = concurrent(args, share)
    for name, medians in ((f"share ({share} threads)", shared), ("default", default)):
        print(f"  {name:20s}: median step {', '.join(f'{m:.2f}s' for m in medians)}")
    ratio = statistics.mean(default) / statistics.mean(shared)
    print(f"  ratio default/share: {ratio:.2f}x  (load after: {os.getloadavg()})")


if __name__ == "__main__":
    main()
