"""`dgpo jobs metrics --plot`: every metric curve of a job in one PNG grid (matplotlib)."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer


def plot_metrics(points: Sequence[dict[str, Any]], out: Path, title: str) -> None:
    """One small panel per metric name, step on the x axis."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise typer.BadParameter("--plot needs matplotlib: pip install 'dgpo[plot]'") from exc

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
