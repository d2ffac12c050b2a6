"""`dgpo jobs metrics --plot` and `dgpo studies report --plot`: metric curves in one PNG
grid (matplotlib), a job's or a study's arms with their CI bands."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer


def plot_metrics(points: Sequence[dict[str, Any]], out: Path, title: str) -> None:
    """One small panel per metric name, step on the x axis."""
    plt = _pyplot()

    names = sorted({n for p in points for n, v in p["values"].items() if _finite(v)})
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        xy = [(p["step"], p["values"][name]) for p in points if _finite(p["values"].get(name))]
        ax.plot([x for x, _ in xy], [y for _, y in xy], linewidth=1.2)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # leave the suptitle its own band
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def plot_study(report: dict[str, Any], out: Path) -> None:
    """One panel per metric (one unit each; the periodic evals' scores after the training
    metrics), every arm's seed mean with its 95 % CI band."""
    plt = _pyplot()
    curves = report["curves"]
    names = list(dict.fromkeys(p["metric"] for p in curves))
    arms = [a["arm"] for a in report["arms"]]
    cols = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for arm in arms:
            points = [p for p in curves if p["metric"] == name and p["arm"] == arm]
            if not points:
                continue
            steps = [p["step"] for p in points]
            (line,) = ax.plot(steps, [p["mean"] for p in points], linewidth=1.2, label=arm)
            banded = [p for p in points if p["ci_low"] is not None]
            if banded:
                ax.fill_between(
                    [p["step"] for p in banded],
                    [p["ci_low"] for p in banded],
                    [p["ci_high"] for p in banded],
                    color=line.get_color(),
                    alpha=0.2,
                )
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if names:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{report['name']}: mean across seeds, 95 % CI")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise typer.BadParameter("--plot needs matplotlib: pip install 'dgpo[plot]'") from exc
    return plt
