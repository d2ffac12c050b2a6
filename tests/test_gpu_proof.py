"""bench/gpu_proof.py: --smoke runs every part on CPU and passes its checks; the exit code
says why it did not; MFU is against the device's own peak and the FLOPs that run."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from bench.gpu_proof_parts import FULL, Flops, peak_for
from trainer.data.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def proof(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/gpu_proof.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_gpu_proof_smoke_mode_passes_its_checks_on_cpu() -> None:
    run = proof("--smoke")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "ratio naive/fused time:" in out and "tokens/s" in out
    assert "master weights moved by one update at lr 1e-6: 100.00%" in out
    assert "[3] FSDP2 step, 1 process, gloo:" in out
    if importlib.util.find_spec("vllm") is not None:
        assert "[4] vLLM" in out and "check ok   after a push the engine agrees" in out
    assert "check FAIL" not in out and out.rstrip().endswith("all checks passed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_without_cuda_the_full_proof_exits_3_cannot_run_not_1_check_failed() -> None:
    run = proof()
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stdout.startswith("cannot run: no CUDA device")


def test_a_package_the_update_path_imports_missing_exits_3_naming_it() -> None:
    """Run from a checkout that was never installed: pydantic (a core dependency, which the
    update's configs need) missing is "cannot run here", not a crash or a failed check."""
    hide_pydantic = (
        "import runpy, sys; sys.modules['pydantic'] = None; "
        "sys.argv = ['bench/gpu_proof.py', '--smoke']; "
        "runpy.run_path('bench/gpu_proof.py', run_name='__main__')"
    )
    run = subprocess.run(
        [sys.executable, "-c", hide_pydantic], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stdout.startswith("cannot run: pydantic is not installed; `pip install -e .`")


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989e12),  # SXM
        ("NVIDIA H200", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H100 NVL", 835e12),
        ("Tesla T4", None),  # unknown: no MFU rather than a wrong one
    ],
)
def test_mfu_is_against_the_dense_bf16_peak_of_the_device_it_ran_on(
    name: str, peak: float | None
) -> None:
    assert peak_for(name) == peak


def test_flops_count_the_lm_head_only_for_the_tokens_that_get_a_logprob() -> None:
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(tiny_config(FULL.vocab, **FULL.dims))
    flops = Flops.of(model)
    params = sum(p.numel() for p in model.parameters())
    assert flops.head == 151936 * 1536 and flops.body == params - flops.head  # tied head
    tokens, scored, seq = 8 * 2048, 8 * 1536, 2048
    fused, naive = (flops.count(tokens, n, seq, backward=False) for n in (scored, tokens))
    assert naive - fused == 2 * flops.head * (tokens - scored)
    # The 1.5B shape: the old count (6 x every parameter for every token) overstated the
    # update's FLOPs by the head's share for the 512 prompt tokens of each row.
    old = (6 * params + 6 * 28 * 1536 * seq) * tokens
    assert flops.count(tokens, scored, seq, backward=True) < 0.97 * old
