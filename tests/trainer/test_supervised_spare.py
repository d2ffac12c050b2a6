"""The spare child's warm-up imports what a train attempt would, so the attempt does not.

A real train command (the tiny model, one step) runs after `warm_up` in a fresh process,
as a spare runs its attempt; what it still imports of torch, transformers or scipy is
counted. The model's own architecture modules (`modeling_qwen2`: 40 ms on loaded cores)
and a few stragglers of a call path cost milliseconds; a lazy import the list misses
brings hundreds (`transformers.modeling_layers` with scipy, 1.8 s on idle cores, did).
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT, operator_dir

HEAVY = ("torch", "transformers", "scipy")

PROBE = """
import json, runpy, sys
from trainer.supervised_spare import warm_up
warm_up()
before = set(sys.modules)
sys.argv = ["trainer.cli", *sys.argv[1:]]
try:
    runpy.run_module("trainer.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {heavy!r})
print(json.dumps(heavy))
"""


def test_after_the_warm_up_a_train_attempt_imports_almost_nothing_heavy(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    from trainer.data.tiny import write_toy_dataset

    data = write_toy_dataset(operator_dir("datasets") / "toy.jsonl", num_prompts=4)
    spec = {
        "model": {"path": tiny_model_dir},
        "dataset": {"path": str(data)},
        "prompt": {"instruction": "", "use_chat_template": False},
        "algorithm": {"group_size": 2, "reward": "contains"},
        "rollout": {"max_prompt_tokens": 16, "max_response_tokens": 4, "batch_size": 4},
        "optim": {"prompts_per_step": 2, "mini_batch_prompts": 2, "micro_batch_size": 4},
        "total_steps": 1,
    }
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    probe = PROBE.format(heavy=set(HEAVY))
    args = [str(spec_file), "--output", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(heavy) <= 20, heavy
