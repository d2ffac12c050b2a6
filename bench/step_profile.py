"""Where a training step of `bench/vs_trl.py`'s shape spends its time (torch.profiler).

    python bench/step_profile.py [--model smollm2-135m] [--engine hf] [--steps 3] [--warmup 2]
                                 [--threads 1]

Runs this project's trainer on the vs_trl spec (4 prompts x 8 samples x 16 new tokens,
fp32, CPU), drops `--warmup` steps, profiles `--steps` steps and prints, per step:
- the phases: rollout (generation), reward, the separate π_old pass (absent where the
  update takes it from its own forward), the log-prob forwards, the backward, AdamW,
  and the rest of the step (batching, metrics, the weight push to a vLLM engine);
- the operators with the most self time.
The phase labels are put on by this script (wrapping the loop's functions), so the
trainer's own code carries no profiling hooks. Profiling adds a little per operator:
compare phases within one profile, and steps across runs with `bench/vs_trl.py`.
"""

import argparse
import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from vs_trl import our_spec

import trainer.rl.loop as loop
import trainer.rl.update as update
from trainer.data.builtins import resolve
from trainer.reporting.callbacks import Callback

PHASES = {
    "rollout": (loop, "collect_rollouts"),
    "pi_old pass": (loop, "old_policy_logprobs"),
    "update": (loop, "policy_update"),
    "log-prob forward": (update, "response_logprobs"),
}
OPTIMIZER = "Optimizer.step#AdamW.step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--engine", default="hf", choices=["hf", "vllm"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for label, (module, name) in PHASES.items():
        setattr(module, name, _labelled(label, getattr(module, name)))
    torch.Tensor.backward = _labelled("backward", torch.Tensor.backward)
    model, data = resolve(args.model), resolve("toy-digits")
    spec = our_spec(model, data, args.warmup + args.steps, args.engine)
    prof = profile(activities=[ProfilerActivity.CPU])
    steps = _Window(prof, args.warmup, args.steps)
    with tempfile.TemporaryDirectory() as out:
        loop.train(spec, output_dir=out, callbacks=steps, resume=False)
    print(f"{args.model}, engine {args.engine}, threads {args.threads}, load {os.getloadavg()}")
    report(prof, steps.step_times, args.steps)


class _Window(Callback):
    """Starts the profiler after the warm-up steps and keeps each step's wall time."""

    def __init__(self, prof: profile, warmup: int, steps: int) -> None:
        self.prof, self.warmup, self.last = prof, warmup, warmup + steps
        self.step_times: list[float] = []

    def on_step_end(self, step: int, metrics: Any) -> None:
        if step > self.warmup:
            self.step_times.append(metrics["time/step"])
        if step == self.warmup:
            self.prof.start()
        elif step == self.last:
            self.prof.stop()


def _labelled(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return fn(*args, **kwargs)

    return wrapper


def report(prof: profile, step_times: list[float], steps: int) -> None:
    events = prof.key_averages()
    total = sum(step_times) / steps
    print(f"step (the loop's time/step, mean of {steps}): {total:.3f} s")
    by_name = {e.key: e.cpu_time_total / 1e6 / steps for e in events}
    rows = [*PHASES, "backward", OPTIMIZER]
    for name in rows:
        seconds = by_name.get(name, 0.0)
        print(f"  {name:26s} {seconds:7.3f} s  {seconds / total:6.1%}")
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    print("operators by self time per step:")
    for e in top:
        seconds = e.self_cpu_time_total / 1e6 / steps
        print(f"  {e.key:40s} {seconds:7.3f} s  {seconds / total:6.1%}  x{e.count // steps}")


if __name__ == "__main__":
    main()
