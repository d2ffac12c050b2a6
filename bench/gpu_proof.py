"""One GPU proof: the project's update path on a Qwen2.5-1.5B-shaped model, one H100/H200.

    python bench/gpu_proof.py            # CUDA: ~5 min on one H100 or H200
    python bench/gpu_proof.py --smoke    # CPU, tiny model, ~1 min (tests/test_gpu_proof.py)

Runs the project's own update path, so it needs what the project installs (`pip install
-e .`, or the GPU image): torch, transformers and pydantic (the update's configs are
pydantic models) are core dependencies. Run from a checkout that was not installed, a
missing package exits 3 naming it, before anything runs. No hub: the model is a random-init
Qwen2 of the 1.5B shape built offline. Parts, each timed:
1. the fused log-prob pass (`batched_logprobs`) against the naive full-logits baseline, in
   the same run (speed ratio and agreement);
2. single-device training: bf16 autocast over fp32 masters (`Solo.prepare`) and
   `policy_update` at 8 x 2048 tokens;
3. a 1-process FSDP2 step (`shard_policy`, NCCL on GPU, gloo in --smoke), bf16 params;
4. where vLLM imports: the project's `VLLMEngine` generating and taking a weight push
   (`bench/gpu_proof_vllm.py`).
Prints tokens/s, MFU against the device's dense bf16 peak (`PEAK_BF16`, by device name;
none printed for a device not listed) and peak memory. FLOPs count what runs: every
matmul of the body for every token, the lm_head only for the tokens that get a log-prob
(the fused pass skips prompt positions; the naive one computes them all), causal
attention, x3 with the backward. Exit codes: 0 all checks passed, 1 a check failed
(optimizer parameters and AdamW state fp32; one update at lr 1e-6 moves > 90% of the
master weights, both paths; fused and naive log-probs agree; losses finite; the engine
samples from pushed weights), 3 cannot run here (no CUDA without --smoke, a package not
installed), 4 crashed (traceback printed). argparse's usage errors are 2.
"""

import argparse
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_CHECK_FAILED, EXIT_UNAVAILABLE, EXIT_CRASHED = 0, 1, 3, 4


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, gloo")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        import torch

        from bench.gpu_proof_parts import run
    except ModuleNotFoundError as exc:
        print(f"cannot run: {exc.name} is not installed; `pip install -e .` installs all it needs")
        return EXIT_UNAVAILABLE
    if not args.smoke and not torch.cuda.is_available():
        print(
            "cannot run: no CUDA device (torch.cuda.is_available() is False); --smoke runs on CPU"
        )
        return EXIT_UNAVAILABLE
    try:
        failures = run(args.smoke)
    except Exception:
        traceback.print_exc()
        print("CRASHED: see the traceback above")
        return EXIT_CRASHED
    print("all checks passed" if not failures else f"FAILED: {failures}")
    return EXIT_CHECK_FAILED if failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
