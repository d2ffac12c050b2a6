"""Metric curves as inline SVG, drawn on the server: no JavaScript, no vendored chart library.

A job page shows a dozen small multiples of at most a few hundred points each, which
SVG polylines draw instantly and which render the same in a headless browser, an email
client or a saved HTML file.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Point = tuple[float, float]
Band = tuple[float, float, float]
"""(step, low, high): a confidence interval drawn as a shaded band around its series."""

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
MAX_POINTS = 400
"""Per chart; longer runs are thinned evenly in the database (last step always kept)."""


@dataclass(frozen=True)
class ChartGroup:
    """Metrics drawn on one chart: every name that matches `pattern` (case-insensitive).

    One chart holds one unit: the title names it, so seconds never share an axis with a
    reward in [0, 1].
    """

    title: str
    pattern: str
    flat_zero_note: str | None = None
    """Said under the chart when every value is 0, where that is expected, not a fault."""


ON_POLICY = (
    "all 0: expected on-policy (one update per batch, so π = π_old: ratios are 1, "
    "nothing is clipped, the KL to π_old is 0)"
)

CHART_GROUPS = (
    # Units first: `time/reward` is seconds, whatever else its name matches.
    ChartGroup("Time per phase (s)", r"^time/"),
    ChartGroup("Throughput (tokens/s)", r"^perf/|tokens_per_s"),
    ChartGroup("Accuracy (fraction)", r"acc"),
    ChartGroup("Reward", r"reward"),
    ChartGroup("Response length (tokens)", r"(response|completion|resp)[_/]?len"),
    ChartGroup("Clip fractions (LN / HP)", r"clip", ON_POLICY),
    ChartGroup("Weight W", r"(^|[/_])w([/_]|$)|weight"),
    ChartGroup("KL", r"kl", ON_POLICY),
    ChartGroup("Entropy (nats)", r"entropy"),
)


def series_by_name(rows: Sequence[tuple[int, Mapping[str, object]]]) -> dict[str, list[Point]]:
    """Pivot metric rows `(step, {name: value})` into one finite-valued series per name."""
    series: dict[str, list[Point]] = {}
    for step, values in rows:
        for name, value in values.items():
            if isinstance(value, int | float) and math.isfinite(value):
                series.setdefault(name, []).append((float(step), float(value)))
    return series


def grouped_charts(
    series: Mapping[str, list[Point]],
) -> list[tuple[ChartGroup, dict[str, list[Point]]]]:
    """The standard chart groups that have data, each with its matching series.

    A metric lands in the first group it matches, so `clip_frac/kl_side` is not drawn twice.
    """
    taken: set[str] = set()
    charts = []
    for group in CHART_GROUPS:
        regex = re.compile(group.pattern, re.IGNORECASE)
        members = {
            n: pts for n, pts in sorted(series.items()) if n not in taken and regex.search(n)
        }
        taken |= members.keys()
        if members:
            charts.append((group, members))
    return charts


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.2e}"


def nice_ticks(low: float, high: float, count: int = 5) -> tuple[list[float], int]:
    """About `count` round ticks (1, 2 or 5 x 10^k apart) covering [low, high], and the
    decimals that tell neighbours apart (so 5.541 and 5.542 never both read 5.54)."""
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    decimals = max(0, -math.floor(math.log10(step)))
    return [round(i * step, decimals + 2) for i in range(first, last + 1)], decimals


def step_ticks(first: float, last: float, count: int = 8) -> list[float]:
    """About `count` x labels: the first and last step and round steps (1, 2 or 5 x 10^k
    apart) between them, none crowding the ends."""
    if last - first < 1:
        return [first]
    ticks, _ = nice_ticks(first, last, count)
    spacing = max(1.0, ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    inner = [t for t in ticks if first + spacing / 2 < t < last - spacing / 2 and t == int(t)]
    return [first, *inner, last]


def _tick_label(value: float, decimals: int) -> str:
    if value != 0 and not 1e-3 <= abs(value) < 1e6:
        return f"{value:.2e}"
    return f"{value:.{decimals}f}"


def line_chart(
    title: str,
    series: Mapping[str, list[Point]],
    width: int = 460,
    height: int = 230,
    *,
    flat_zero_note: str | None = None,
    bands: Mapping[str, list[Band]] | None = None,
) -> Markup:
    """One SVG line chart with y ticks, step labels, a legend, `flat_zero_note` when
    every value is 0, and a shaded band (a study's CI across seeds) behind each series
    `bands` names."""
    series = {name: sorted(pts) for name, pts in series.items() if pts}
    bands = {name: sorted(b) for name, b in (bands or {}).items() if b and name in series}
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    ys += [v for band in bands.values() for _, low, high in band for v in (low, high)]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5
    ticks, decimals = nice_ticks(y0, y1)
    y0, y1 = ticks[0], ticks[-1]
    if x0 == x1:
        x0, x1 = x0 - 0.5, x1 + 0.5
    left, right, top, bottom = 52, 10, 24, 22 + 14 * len(series)
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    parts = [
        f'<svg class="chart" data-title="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="15" class="chart-title">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>',
    ]
    for value in ticks:
        y = sy(value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{left - 4}" y="{y + 3:.1f}" class="tick" text-anchor="end">'
            f"{_tick_label(value, decimals)}</text>"
        )
    axis_y = top + plot_h + 12
    steps = step_ticks(min(xs), max(xs))
    for i, step in enumerate(steps):
        anchor = "start" if i == 0 else "end" if i == len(steps) - 1 else "middle"
        label = f"step {_fmt(step)}" if i == 0 else _fmt(step)
        parts.append(
            f'<text x="{sx(step):.1f}" y="{axis_y}" class="tick x" text-anchor="{anchor}">'
            f"{label}</text>"
        )
    if flat_zero_note and not any(ys):
        parts.append(
            f'<text x="{left + 6}" y="{top + 14}" class="note">{escape(flat_zero_note)}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        if name in bands:
            edge = [(x, high) for x, _, high in bands[name]]
            edge += [(x, low) for x, low, _ in reversed(bands[name])]
            outline = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in edge)
            parts.append(
                f'<polygon class="band" data-name="{escape(name)}" fill="{color}" '
                f'fill-opacity="0.15" stroke="none" points="{outline}"/>'
            )
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline class="series" data-name="{escape(name)}" data-points="{len(pts)}" '
            f'fill="none" stroke="{color}" stroke-width="1.6" points="{coords}"/>'
        )
        legend_y = axis_y + 14 * (i + 1)
        last = _fmt(pts[-1][1])
        parts.append(
            f'<text x="{left}" y="{legend_y}" class="legend" fill="{color}">'
            f"■ {escape(name)} (last {last})</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
