"""Avg@k and unbiased Pass@k (Chen et al., 2021) from per-problem correct counts."""

from collections.abc import Sequence

from trainer.results import ProblemResult


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n is correct), c correct.

    `1 - C(n-c, k) / C(n, k)` as the product `prod_{i=n-c+1}^{n} (1 - k/i)`, which
    never forms the huge binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def avg_at_k(problems: Sequence[ProblemResult]) -> float:
    """Mean over problems of the fraction of correct samples."""
    if not problems:
        raise ValueError("avg@k of zero problems is undefined")
    return sum(p.num_correct / p.num_samples for p in problems) / len(problems)


def mean_pass_at_k(problems: Sequence[ProblemResult], k: int) -> float:
    if not problems:
        raise ValueError("pass@k of zero problems is undefined")
    return sum(pass_at_k(p.num_samples, p.num_correct, k) for p in problems) / len(problems)


def benchmark_scores(problems: Sequence[ProblemResult], pass_ks: Sequence[int]) -> dict[str, float]:
    """`{"avg@k": ..., "pass@j": ...}` with k the samples per problem, for each j requested."""
    k = problems[0].num_samples if problems else 0
    scores = {f"avg@{k}": avg_at_k(problems)}
    scores.update({f"pass@{j}": mean_pass_at_k(problems, j) for j in pass_ks})
    return scores


def average_scores(per_benchmark: Sequence[dict[str, float]]) -> dict[str, float]:
    """Unweighted mean of each score that every benchmark reports (the papers' "Avg.")."""
    if not per_benchmark:
        return {}
    shared = set(per_benchmark[0]).intersection(*per_benchmark[1:])
    return {key: sum(s[key] for s in per_benchmark) / len(per_benchmark) for key in sorted(shared)}
