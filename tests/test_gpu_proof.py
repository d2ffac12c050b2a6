"""bench/gpu_proof.py --smoke runs the GPU proof's three parts on CPU and passes its checks."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_proof_smoke_mode_passes_its_checks_on_cpu() -> None:
    run = subprocess.run(
        [sys.executable, "bench/gpu_proof.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "ratio naive/fused time:" in out and "tokens/s" in out
    assert "master weights moved by one update at lr 1e-6: 100.00%" in out
    assert "[3] FSDP2 step, 1 process, gloo:" in out
    assert "check FAIL" not in out and out.rstrip().endswith("all checks passed")
