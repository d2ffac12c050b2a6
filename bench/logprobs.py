"""Token log-probs from hidden states: naive full logits vs the fused chunked lm_head.

    python bench/logprobs.py [--tokens 4096] [--hidden 1536] [--vocab 151936] [--chunk-size N]

CPU, fp32, forward + backward (gradients for hidden and lm_head weight) of the
Qwen2.5-1.5B shape. Each path runs in a fresh subprocess; once its inputs are built the kernel's
peak-RSS mark is reset (`/proc/self/clear_refs`), and the path's peak memory is the growth of
that mark (`VmHWM`) over the RSS at the reset. Why RSS: torch's CPU allocator has no peak
counter (torch.cuda.max_memory_allocated has no CPU twin) and the profiler's memory view misses
temporaries inside ATen kernels; RSS counts every byte the kernel had to back, fragmentation
included, and a fresh process per path keeps one path's pages from being reused by the other.
Linux only.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MEMORY_RATIO = 0.25
TARGET_TIME_RATIO = 1.3


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} missing from /proc/self/status: this benchmark needs Linux")


def _reset_peak_rss() -> int:
    """Set the peak-RSS mark to the current RSS and return it."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def run_path(path: str, tokens: int, hidden_size: int, vocab: int, chunk_size: int) -> dict:
    """One forward + backward of one path in this process; returns peak growth and seconds."""
    import torch

    from trainer.rl.logprobs import fused_token_logprobs

    torch.manual_seed(0)
    hidden = torch.randn(tokens, hidden_size).mul_(0.5).requires_grad_()
    weight = torch.randn(vocab, hidden_size).mul_(0.02).requires_grad_()
    labels = torch.randint(0, vocab, (tokens,))
    upstream = torch.randn(tokens)
    baseline = _reset_peak_rss()
    start = time.perf_counter()
    if path == "naive":
        logits = hidden @ weight.T
        log_prob = torch.log_softmax(logits, dim=-1).gather(-1, labels[:, None]).squeeze(-1)
    else:
        log_prob, _ = fused_token_logprobs(hidden, weight, labels, chunk_size=chunk_size)
    (log_prob * upstream).sum().backward()
    seconds = time.perf_counter() - start
    checksum = float(weight.grad.abs().sum() + hidden.grad.abs().sum())
    return {
        "peak_bytes": _status_bytes("VmHWM") - baseline,
        "seconds": seconds,
        "checksum": checksum,
    }


def _measure(args: argparse.Namespace, path: str) -> dict:
    command = [sys.executable, __file__, "--worker", path]
    command += ["--tokens", str(args.tokens), "--hidden", str(args.hidden)]
    command += ["--vocab", str(args.vocab), "--chunk-size", str(args.chunk_size)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--worker", choices=["naive", "fused"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_path(args.worker, args.tokens, args.hidden, args.vocab, args.chunk_size)
        print(json.dumps(result))
        return

    print(
        f"tokens={args.tokens} hidden={args.hidden} vocab={args.vocab} "
        f"chunk_size={args.chunk_size} (CPU fp32, forward+backward, one fresh process per path)"
    )
    naive, fused = _measure(args, "naive"), _measure(args, "fused")
    for name, result in (("naive", naive), ("fused", fused)):
        print(
            f"{name:>6}: peak +{result['peak_bytes'] / 2**30:6.2f} GiB  {result['seconds']:7.2f} s"
        )
    memory_ratio = fused["peak_bytes"] / naive["peak_bytes"]
    time_ratio = fused["seconds"] / naive["seconds"]
    agree = abs(fused["checksum"] - naive["checksum"]) <= 1e-3 * abs(naive["checksum"])
    print(f"memory fused/naive = {memory_ratio:.3f} (target <= {TARGET_MEMORY_RATIO})")
    print(f"time   fused/naive = {time_ratio:.3f} (target <= {TARGET_TIME_RATIO})")
    print(f"gradient checksums agree: {agree}")


if __name__ == "__main__":
    main()
