"""`train` as a torchrun group on the vLLM engine, recording what each rank trained on.

    python -m torch.distributed.run --nproc_per_node N -m tests.distributed.vllm_group_run SPEC OUT

Rank 0 logs `OUT/metrics.jsonl`; every rank writes `OUT/rollouts-rank<R>.json`: per step,
the completions' token ids and log-probs it built its batch from (rank 0 generated them;
the others received them).
`train_step` is wrapped to read `state.last_rollouts` after the real step ran.
"""

import argparse
import json
import os
from pathlib import Path
from typing import Any

import trainer.rl.loop as loop
from trainer.cli import load_train_spec
from trainer.reporting.loggers import JsonlLogger


def recording(out: Path) -> Any:
    step = loop.train_step
    seen: list[list[dict[str, Any]]] = []

    def train_step(spec: Any, state: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        metrics = step(spec, state, *args, **kwargs)
        completions = state.last_rollouts.completions
        seen.append([{"tokens": c.token_ids, "logprobs": c.logprobs} for c in completions])
        (out / f"rollouts-rank{os.environ['RANK']}.json").write_text(json.dumps(seen))
        return metrics

    return train_step


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    loop.train_step = recording(args.out)
    spec = load_train_spec(args.spec)
    metrics = JsonlLogger(args.out / "metrics.jsonl")  # rank 0's alone is called
    loop.train(spec, output_dir=str(args.out), callbacks=metrics, resume=False)
