"""Chart ticks are round numbers that tell neighbouring values apart."""

import re

from service.ui.charts import line_chart, nice_ticks


def test_close_values_get_distinct_round_ticks() -> None:
    series = {"entropy/mean": [(1.0, 5.5412), (2.0, 5.5415), (3.0, 5.5418)]}
    svg = str(line_chart("Entropy (nats)", series))
    y_labels = re.findall(r'class="tick" text-anchor="end">([^<]+)</text>', svg)
    assert len(set(y_labels)) == len(y_labels) >= 3
    assert y_labels == ["5.5412", "5.5414", "5.5416", "5.5418"]


def test_ticks_are_1_2_5_multiples_covering_the_range() -> None:
    assert nice_ticks(0.01, 37.2) == ([0, 10, 20, 30, 40], 0)
    assert nice_ticks(0.0, 1.0) == ([0.0, 0.5, 1.0], 1)
    ticks, _ = nice_ticks(120, 4000)
    assert ticks[0] <= 120 and ticks[-1] >= 4000 and len(ticks) <= 6


def test_the_x_axis_labels_steps_between_the_first_and_the_last() -> None:
    svg = str(line_chart("Reward", {"reward/mean": [(s, s * 0.1) for s in range(1, 13)]}))
    labels = [int(t) for t in re.findall(r'class="tick x"[^>]*>(?:step )?(\d+)<', svg)]
    assert len(labels) >= 4 and labels == sorted(labels)
    assert labels[0] == 1 and labels[-1] == 12


def test_a_chart_flat_at_zero_says_why_when_its_group_knows() -> None:
    note = "expected on-policy"
    flat = str(line_chart("KL", {"kl/approx_k3": [(1, 0.0), (2, 0.0)]}, flat_zero_note=note))
    moving = str(line_chart("KL", {"kl/approx_k3": [(1, 0.0), (2, 0.1)]}, flat_zero_note=note))
    assert note in flat and note not in moving
