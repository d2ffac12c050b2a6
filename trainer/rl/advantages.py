"""Outcome advantage estimators over groups of samples of the same prompt.

`rewards` is flat with each group's samples contiguous (N = groups · group_size). Every
estimator is centred per group, so a group whose rewards are all equal gets exactly zero
advantage (it carries no learning signal) and never NaN. Registry keys are those of
`trainer.spec.ADVANTAGE_ESTIMATORS`.
"""

from collections.abc import Callable, Mapping

from torch import Tensor

from trainer.spec import ADVANTAGE_ESTIMATORS as ESTIMATOR_NAMES

AdvantageFn = Callable[[Tensor, float], Tensor]
"""(rewards [groups, group_size], eps) -> advantages of the same shape."""


def grpo(groups: Tensor, eps: float) -> Tensor:
    """GRPO (arXiv 2402.03300): (r − mean) / (std + ε), unbiased std within the group."""
    centred = groups - groups.mean(dim=-1, keepdim=True)
    return centred / (groups.std(dim=-1, keepdim=True) + eps)


def dr_grpo(groups: Tensor, eps: float) -> Tensor:
    """Dr. GRPO (arXiv 2503.20783): r − mean, no std division (removes the difficulty bias)."""
    return groups - groups.mean(dim=-1, keepdim=True)


def rloo(groups: Tensor, eps: float) -> Tensor:
    """RLOO (arXiv 2402.14740): r_i − mean of the other samples = G/(G−1) · (r_i − mean)."""
    size = groups.shape[-1]
    return size / (size - 1) * (groups - groups.mean(dim=-1, keepdim=True))


ADVANTAGE_ESTIMATORS: Mapping[str, AdvantageFn] = {"grpo": grpo, "dr_grpo": dr_grpo, "rloo": rloo}


def compute_advantages(name: str, rewards: Tensor, group_size: int, *, eps: float = 1e-6) -> Tensor:
    """Per-sample advantages [N] (float32 or wider) for flat rewards [N] grouped contiguously."""
    estimator = ADVANTAGE_ESTIMATORS.get(name)
    if estimator is None:
        raise ValueError(
            f"unknown advantage estimator {name!r}; choose one of {list(ESTIMATOR_NAMES)}"
        )
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 for a group-based estimator (got {group_size})")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be 1-D with a multiple of group_size={group_size} entries, "
            f"samples of one prompt contiguous; got shape {tuple(rewards.shape)}"
        )
    groups = rewards.float() if not rewards.is_floating_point() else rewards
    return estimator(groups.reshape(-1, group_size), eps).reshape(-1)
