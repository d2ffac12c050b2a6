"""Evaluation: scores (Avg@k, Pass@k), run comparison, and the eval runner."""

from trainer.evaluation.compare import (
    Comparison,
    Verdict,
    compare_results,
    overall_verdict,
    paired_bootstrap,
    verdict,
)
from trainer.evaluation.runner import evaluate_benchmark, run_eval
from trainer.evaluation.scores import (
    average_scores,
    avg_at_k,
    benchmark_scores,
    mean_pass_at_k,
    pass_at_k,
)

__all__ = [
    "Comparison",
    "Verdict",
    "average_scores",
    "avg_at_k",
    "benchmark_scores",
    "compare_results",
    "evaluate_benchmark",
    "mean_pass_at_k",
    "overall_verdict",
    "paired_bootstrap",
    "pass_at_k",
    "run_eval",
    "verdict",
]
