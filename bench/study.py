"""The paper's comparison in miniature, as one study through the service: DGPO vs GRPO vs
CISPO on SmolLM2-135M, arith -> arith-test.

    python bench/study.py [--steps 16] [--seeds 1 2] [--problems 64] [--k 4] [--home DIR]

One `POST /studies` to the embedded stack (API -> SQLite -> worker -> trainer children)
trains every (loss, seed) with the recipe `bench/learning.py` found to learn (4 prompts x
8 samples, 12 new tokens, lr 1e-5, fp32, truncated answers credited), made off-policy
enough for the losses to differ: 4 mini-batches of one prompt per rollout batch, so later
mini-batches update a policy that has moved since the rollout. Each final checkpoint is
scored on held-out `arith-test` (Avg@k, T=0.6), and `GET /studies/{id}/report` gives
curves with CIs across seeds, the paired verdicts against DGPO (Holm-corrected) and the
share of tokens outside the trust region per arm.

The budget (steps, seeds, problems, k) is a flag: the full comparison needs idle cores
for an hour or more; a small budget shows the machinery and how wide the CIs are, not
which loss wins. Prints the report; with `--doc` writes `docs/studies.png` and the
figures block of `docs/studies.md`.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.learning import PROMPT, free_port, write_figures  # noqa: E402
from dgpo.client import DgpoClient  # noqa: E402
from dgpo.commands.embedded import EmbeddedStack, local_token, prepare_home  # noqa: E402
from dgpo.commands.plot import plot_study  # noqa: E402
from trainer.data.builtins import SMOLLM2  # noqa: E402

BENCHMARK = "arith-test"
LOSSES = ("dgpo", "grpo", "cispo")
FINISHED = ("succeeded", "incomplete", "cancelled")
MARKS = ("<!-- bench/study.py figures -->", "<!-- end of figures -->")


def study_request(args: argparse.Namespace) -> dict[str, Any]:
    base = {
        "model": {"path": SMOLLM2, "dtype": "float32"},
        "dataset": {"path": "arith"},
        "prompt": PROMPT,
        "algorithm": {"group_size": 8, "reward": "math", "answer_format": "number",
                      "credit_truncated": True},
        "rollout": {"max_prompt_tokens": 96, "max_response_tokens": args.tokens, "batch_size": 4},
        "optim": {"lr": 1e-5, "prompts_per_step": 4, "mini_batch_prompts": 1,
                  "micro_batch_size": 8},
        "total_steps": args.steps,
        "checkpoint": {"every_steps": 0, "keep_last": 1},
    }  # fmt: skip
    return {
        "name": f"dgpo-grpo-cispo smollm2 {args.steps} steps",
        "base": base,
        "arms": {loss: {"algorithm.policy_loss.name": loss} for loss in LOSSES},
        "baseline": "dgpo",
        "seeds": args.seeds,
        "eval": {"benchmarks": [BENCHMARK], "prompt": PROMPT, "answer_format": "number",
                 "k": args.k, "max_problems": args.problems, "max_tokens": args.tokens},
    }  # fmt: skip


def follow(api: DgpoClient, study_id: str, started: float) -> dict[str, Any]:
    """Poll until the study ends, printing each member's status when it changes."""
    seen: dict[tuple[str, int, str], str] = {}
    while True:
        study = api.get_study(study_id)
        for m in study["members"]:
            key = (m["arm"], m["seed"], m["role"])
            if seen.get(key) != m["status"]:
                seen[key] = m["status"]
                print(f"  {time.monotonic() - started:6.0f} s  {m['arm']:6} seed {m['seed']} "
                      f"{m['role']:5} {m['status']}", flush=True)  # fmt: skip
        if study["status"] in FINISHED:
            return study
        time.sleep(5.0)


def markdown(report: dict[str, Any], figures: dict[str, Any]) -> str:
    rows = [
        "| arm | benchmark score | mean | 95 % CI (seeds) | per seed |",
        "|---|---|---|---|---|",
    ]
    for e in report["evals"]:
        ci = "—" if e["ci_low"] is None else f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
        seeds = ", ".join(f"{v:.3f}" for v in e["by_seed"].values())
        rows.append(
            f"| {e['arm']} | {e['benchmark']} {e['score']} | {e['mean']:.3f} | {ci} | {seeds} |"
        )
    rows += ["", "| arm vs dgpo | difference | 95 % CI (paired bootstrap) "
             "| simultaneous CI (Bonferroni) | p | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in report["comparisons"]:
        rows.append(
            f"| {c['arm']} ({c['benchmark']}, seeds {c['seeds']}) | "
            f"{c['difference']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | "
            f"[{c['ci_low_adjusted']:+.3f}, {c['ci_high_adjusted']:+.3f}] | "
            f"{c['p_value']:.3g} | {c['p_adjusted']:.3g} | {c['verdict']} |"
        )
    rows += ["", "| arm | outside trust region | W max | W max outside the region "
             "| wall s (train + eval attempts) |", "|---|---|---|---|---|"]  # fmt: skip
    for a in report["arms"]:
        outside, w_max, w_out = (a[k] for k in ("outside_trust_region", "weight_max",
                                                "weight_outside_max"))  # fmt: skip
        rows.append(
            f"| {a['arm']} | {'—' if outside is None else f'{outside:.4f}'} | "
            f"{'—' if w_max is None else f'{w_max:.3g}'} | "
            f"{'—' if w_out is None else f'{w_out:.3g}'} | {a['wall_seconds']:.0f} |"
        )
    for gap in report["not_compared"]:
        rows.append(f"\nnot compared: {gap['arm']} {gap['benchmark'] or ''}: {gap['reason']}")
    rows += ["", "```json", json.dumps(figures, indent=1), "```"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="training steps per member")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--problems", type=int, default=64, help="arith-test problems")
    parser.add_argument("--k", type=int, default=4, help="samples per problem (Avg@k)")
    parser.add_argument("--tokens", type=int, default=12, help="new tokens per response")
    parser.add_argument("--threads", default="1", help="torch threads per process")
    parser.add_argument("--slots", type=int, default=1, help="members the worker runs at once")
    parser.add_argument("--home", type=Path, help="DGPO_HOME (default: a fresh temp dir)")
    parser.add_argument("--doc", action="store_true", help="write docs/studies.{png,md} figures")
    parser.add_argument("--study", help="report this finished study of --home, submit nothing")
    parser.add_argument(
        "--builtin", type=Path, help="reuse the converted built-in model from this builtin/ dir"
    )
    args = parser.parse_args()

    os.environ["OMP_NUM_THREADS"] = args.threads
    os.environ["DGPO_CHILD_THREADS"] = args.threads
    started = time.monotonic()
    load_start = os.getloadavg()
    home = prepare_home(args.home or Path(tempfile.mkdtemp(prefix="dgpo-study-")))
    token = local_token(home)
    from trainer.data.builtins import BUILTIN_MODELS, builtin_root, resolve

    name = BUILTIN_MODELS[SMOLLM2][0]
    if args.builtin and not (builtin_root() / name).exists():  # skip a ~2 min conversion
        builtin_root().mkdir(parents=True, exist_ok=True)
        (builtin_root() / name).symlink_to((args.builtin / name).resolve())

    resolve(SMOLLM2)
    with EmbeddedStack(home, free_port(), args.slots) as stack, DgpoClient(stack.url, token) as api:
        if args.study:
            study = api.get_study(args.study)
        else:
            study = api.submit_study(study_request(args))
            print(f"study {study['id']}: {len(study['members'])} members", flush=True)
            for warning in study["warnings"]:
                print(f"warning: {warning}")
            study = follow(api, study["id"], started)
        report = api.study_report(study["id"])
    wall_s = time.monotonic() - started
    figures = {
        "steps": args.steps, "seeds": args.seeds, "problems": args.problems, "k": args.k,
        "worker_slots": args.slots,
        "status": study["status"], "wall_s": round(wall_s), "cores": os.cpu_count(),
        "load_average_start": load_start, "load_average_end": os.getloadavg(),
    }  # fmt: skip
    text = markdown(report, figures)
    print(text)
    if args.doc:
        plot_study(report, REPO / "docs" / "studies.png")
        write_figures(text, REPO / "docs" / "studies.md", *MARKS)
        print("wrote docs/studies.png and the figures of docs/studies.md")


if __name__ == "__main__":
    main()
