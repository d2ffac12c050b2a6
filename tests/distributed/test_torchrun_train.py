"""`dgpo-train` as a 2-rank torchrun group on CPU/gloo trains and writes a normal checkpoint."""

import json
import subprocess
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM

from trainer.checkpoints.local import latest_valid_checkpoint
from trainer.distributed.launch import torchrun_command

TIMEOUT_S = 180


def tiny_train_spec(model_dir: str, dataset: str, total_steps: int = 2) -> dict:
    """3 rows per mini-batch, so with 2 ranks one rank pads every mini-batch. The random
    model never earns a reward; the entropy bonus gives the update a gradient anyway."""
    return {
        "model": {"path": model_dir},
        "dataset": {"path": dataset},
        "prompt": {"instruction": "", "use_chat_template": False},
        "algorithm": {"group_size": 3, "reward": "contains", "entropy_coef": 0.01},
        "rollout": {"max_prompt_tokens": 16, "max_response_tokens": 4, "batch_size": 4},
        "optim": {
            "lr": 1e-3,
            "prompts_per_step": 2,
            "mini_batch_prompts": 1,
            "micro_batch_size": 3,
        },
        "total_steps": total_steps,
        "checkpoint": {"every_steps": 0, "keep_last": 2},
    }


def test_torchrun_group_trains_and_writes_a_loadable_checkpoint(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_train_spec(tiny_model_dir, toy_dataset)))
    out = tmp_path / "run"
    cmd = torchrun_command(2, "trainer.cli", [str(spec_file), "--output", str(out)])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["type"] == "metrics"] == [1, 2]  # rank 0 alone logs
    checkpoint, rejected = latest_valid_checkpoint(out)
    assert checkpoint is not None and not rejected
    assert checkpoint.path.name == "step-00000002"
    assert (checkpoint.path / "optimizer" / ".metadata").exists()
    trained = AutoModelForCausalLM.from_pretrained(checkpoint.path)
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [
        name
        for (name, a), (_, b) in zip(
            trained.named_parameters(), initial.named_parameters(), strict=True
        )
        if not torch.equal(a, b)
    ]
    assert changed, "two steps of training left every parameter unchanged"
