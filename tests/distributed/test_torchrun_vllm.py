"""A 2-rank torchrun group trains on the vLLM engine (CPU build): rank 0 generates, every
rank trains on the same completions, and start-up does not deadlock.

vLLM joins an initialised `torch.distributed` world as its own (`init_world_group` makes
groups over every rank), so an engine built inside the trainer's group on rank 0 alone
waited forever for rank 1. One test: it starts vLLM (tens of seconds on CPU).
"""

import json
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from tests.distributed.test_torchrun_train import tiny_train_spec
from tests.engines.conftest import require_vllm
from trainer.checkpoints.local import latest_valid_checkpoint
from trainer.distributed.launch import torchrun_command

TIMEOUT_S = 480


def test_torchrun_group_on_vllm_trains_on_rank_0s_completions(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    require_vllm()
    plugins = {e.value for e in entry_points(group="vllm.general_plugins")}
    assert "trainer.engines.vllm_logging:quiet_derived_caches" in plugins, (
        "the installed dgpo predates its vLLM plugin: `pip install -e .` again"
    )
    spec = tiny_train_spec(tiny_model_dir, toy_dataset, total_steps=2)
    spec["rollout"] |= {"engine": "vllm", "temperature": 0.7}
    spec["optim"]["lr"] = 2e-2  # moves the policy enough that only a pushed engine matches
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    cmd = torchrun_command(2, "tests.distributed.vllm_group_run", [str(spec_file), str(out)])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the group did not finish in {TIMEOUT_S}s: {str(exc.stderr)[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The engine core's own process pushes too: the filter reaches it as a vLLM plugin.
    assert "RotaryEmbedding: Failed to load weights" not in proc.stdout + proc.stderr

    ranks = [json.loads((out / f"rollouts-rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]) == 2 and all(len(step) == 6 for step in ranks[0])  # 2 prompts x 3
    assert ranks[1] == ranks[0]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    diffs = [r["metrics"]["rollout/logprob_abs_diff"] for r in rows if r["type"] == "metrics"]
    assert len(diffs) == 2 and all(d < 1e-3 for d in diffs), diffs  # vLLM sampled the policy
    checkpoint, _ = latest_valid_checkpoint(out)
    assert checkpoint is not None and checkpoint.path.name == "step-00000002"
