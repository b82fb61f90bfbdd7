"""Chart geometry for the pages (runs.views.charts): the overview's bar charts and the caps
page's histograms. No database."""

from decimal import Decimal

import pytest

from runs.views.charts import BOTTOM, HEIGHT, HIST_TOP, HIST_WIDTH, bar_chart, histogram


def test_bar_chart_scales_to_the_tallest_bar_and_keeps_small_ones_visible():
    chart = bar_chart("Runs", [("a", 0, "/a"), ("b", 10, "/b"), ("c", 1, "/c")])
    heights = [b.height for b in chart.bars]
    assert heights[0] == 0 and heights[1] == max(heights) and 0 < heights[2] < heights[1]
    assert chart.total == 11 and chart.max_value == 10
    assert [b.href for b in chart.bars] == ["/a", "/b", "/c"]
    assert all(b.x + b.width <= chart.width for b in chart.bars)
    money = bar_chart("Spend", [("a", Decimal("0.5"), "/"), ("b", Decimal("0.25"), "/")])
    assert money.total == Decimal("0.75")


def test_a_bar_is_drawn_as_an_escaped_link_that_templates_output_as_it_is():
    from django.template import Context, Template

    chart = bar_chart("Spend", [('<b>"a"</b>', Decimal("0E-8"), "/runs/?a=1&b=<x>")])
    bar = chart.bars[0]
    svg = Template("{{ bar.svg }}").render(Context({"bar": bar}))
    assert svg.startswith(
        '<a href="/runs/?a=1&amp;b=&lt;x&gt;" aria-label="&lt;b&gt;&quot;a&quot;&lt;/b&gt;: '
        '0.00000000">\n<title>&lt;b&gt;&quot;a&quot;&lt;/b&gt;: 0.00000000</title>'
    )
    assert f'<rect x="{bar.x:.2f}" y="8" width="{bar.width:.2f}" height="114"' in svg
    assert "<b>" not in svg


def test_whole_number_histogram_bins_and_cap_lines():
    chart = histogram("Tool calls", [0, 3, 3, 20, 21], current=20, proposed=5, whole=True)
    # 0..21 in 20 bins: bins 2 wide, 11 of them, [0,2) [2,4) ... [20,22).
    assert [b.count for b in chart.bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert (chart.bins[0].lo, chart.bins[-1].hi, chart.x_max) == (0, 22, 22.0)
    # A cap L is drawn between L and L+1: runs at L are within it.
    lines = {line.label: line for line in chart.lines}
    assert lines["proposed"].x == pytest.approx(6 / 22 * HIST_WIDTH, abs=0.01)
    assert lines["current"].x == pytest.approx(21 / 22 * HIST_WIDTH, abs=0.01)
    assert not lines["current"].off_chart
    # Bins whose runs are all past the proposed cap of 5: from [6, 8) on.
    assert [b.lo for b in chart.bins if b.past_proposed][0] == 6
    tallest = max(chart.bins, key=lambda b: b.count)
    assert tallest.height == pytest.approx(HEIGHT - HIST_TOP - BOTTOM)
    assert [b.label for b in chart.bins[:2]] == ["0–1", "2–3"]


def test_a_cap_far_beyond_every_run_is_drawn_off_the_chart():
    chart = histogram(
        "Spend",
        [Decimal("0.01"), Decimal("0.02")],
        current=Decimal("0.50"),
        proposed=Decimal("0.03"),
    )
    lines = {line.label: line for line in chart.lines}
    assert lines["current"].off_chart and lines["current"].x == HIST_WIDTH
    assert not lines["proposed"].off_chart
    assert lines["proposed"].x == pytest.approx(HIST_WIDTH)  # the axis stretches to show it
    assert lines["proposed"].label_left
    assert sum(b.count for b in chart.bins) == 2


def test_an_empty_histogram_still_has_an_axis():
    chart = histogram("Duration", [], current=300, proposed=60)
    assert chart.runs == 0 and chart.x_max == 60 and all(b.count == 0 for b in chart.bins)
