"""Charts as plain geometry for server-rendered SVG, in a fixed viewBox: the overview's bar charts
and the caps page's histograms. Plain Python, no Django; the templates draw the shapes, except
the bars themselves (`Bar.svg`): the overview draws 4 × 30 of them, and as template tags they
cost more than the page's queries.

`bar_chart` turns a series of (label, value, href) into rectangles, each bar a link with a text
title so the numbers are readable without a mouse. `histogram` bins runs by a figure (tool calls,
spend, duration) and draws the current and proposed cap as vertical lines.
"""

import math
from dataclasses import dataclass
from decimal import Decimal
from html import escape

WIDTH = 600
HEIGHT = 140
TOP = 8  # room above the tallest bar
BOTTOM = 18  # room for the axis labels


class Markup(str):
    """Markup that is already escaped: templates output it as it is (they honour `__html__`)."""

    def __html__(self):
        return self


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: object
    label: str
    href: str

    @property
    def svg(self) -> Markup:
        """The bar as a link holding its title, a full-height hit area and the bar itself."""
        value = f"{self.value:f}" if isinstance(self.value, Decimal) else str(self.value)
        said = escape(f"{self.label}: {value}")
        x, width = f"{self.x:.2f}", f"{self.width:.2f}"
        return Markup(
            f'<a href="{escape(self.href)}" aria-label="{said}">\n<title>{said}</title>\n'
            f'<rect x="{x}" y="{TOP}" width="{width}" height="{HEIGHT - BOTTOM - TOP}" '
            'class="hit-area"></rect>\n'
            f'<rect x="{x}" y="{self.y:.2f}" width="{width}" height="{self.height:.2f}" '
            'class="bar-rect"></rect>\n</a>\n'
        )


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    max_value: object
    total: object
    width: int = WIDTH
    height: int = HEIGHT
    axis_y: float = HEIGHT - BOTTOM
    first_label: str = ""
    last_label: str = ""


def bar_chart(title: str, points: list[tuple[str, object, str]]) -> Chart:
    """A chart of `points` = [(label, value, href)], values ints or Decimals ≥ 0."""
    n = max(len(points), 1)
    slot = WIDTH / n
    gap = min(2.0, slot * 0.2)
    plot_h = HEIGHT - TOP - BOTTOM
    values = [Decimal(str(v or 0)) for _, v, _ in points]
    top = max(values, default=Decimal(0))
    bars = []
    for i, ((label, value, href), v) in enumerate(zip(points, values, strict=True)):
        h = float(v / top * plot_h) if top > 0 else 0.0
        if v > 0:
            h = max(h, 1.5)  # a non-zero bucket stays visible
        bars.append(
            Bar(
                x=round(i * slot + gap / 2, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(slot - gap, 2),
                height=round(h, 2),
                value=value,
                label=label,
                href=href,
            )
        )
    total = sum(values, Decimal(0))
    if all(isinstance(v, int) for _, v, _ in points):
        total, top = int(total), int(top)
    return Chart(
        title=title,
        bars=bars,
        max_value=top,
        total=total,
        first_label=points[0][0] if points else "",
        last_label=points[-1][0] if points else "",
    )


# Histograms: runs by tool calls, spend or duration, with the current and proposed cap drawn as
# vertical lines. Geometry in a fixed viewBox, for a server-rendered SVG.

HIST_WIDTH = 400  # about the size a third of the page shows it at, so its text stays legible
HIST_TOP = 28  # room for the two cap lines' labels
BINS = 20


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    label: str  # the values it holds, as people read them: "3", "2–3", "0.01–0.02"
    count: int
    x: float
    y: float
    width: float
    height: float
    past_proposed: bool  # every run in it is beyond the proposed cap


@dataclass(frozen=True)
class CapLine:
    label: str  # "current" or "proposed"
    value: float
    x: float
    off_chart: bool  # the cap is far beyond every run: drawn at the right edge

    @property
    def label_left(self) -> bool:
        """Near the right edge: put the label on the line's left."""
        return self.x > HIST_WIDTH * 0.7


@dataclass(frozen=True)
class Histogram:
    title: str
    whole: bool
    unit: str
    bins: list[Bin]
    lines: list[CapLine]
    x_max: float
    max_count: int
    runs: int
    width: int = HIST_WIDTH
    height: int = HEIGHT
    axis_y: float = HEIGHT - BOTTOM


def histogram(
    title: str,
    values: list,
    *,
    current=None,
    proposed=None,
    unit: str = "",
    whole: bool = False,
    bins: int = BINS,
) -> Histogram:
    """Runs binned by `values` (ints when `whole`, else any non-negative numbers).

    The axis runs from 0 to the largest value, stretched to show a cap up to twice that; a cap
    further out is drawn at the right edge as off the chart. For whole numbers a cap L is drawn
    between L and L+1 (a run with L is within it), and bins are whole numbers wide.
    """
    data = [float(v) for v in values]
    caps = [float(c) for c in (current, proposed) if c is not None]
    top = max(data, default=0.0)
    x_max = max([top, *[c for c in caps if c <= 2 * top]])
    if x_max <= 0:
        x_max = min(caps) if caps else 1.0
    if whole:
        width = max(1, math.ceil((x_max + 1) / bins))
        count = max(1, math.ceil((x_max + 1) / width))
        span = float(width * count)
    else:
        width = x_max / bins
        count = bins
        span = x_max
    counts = [0] * count
    for v in data:
        counts[min(int(v // width), count - 1)] += 1
    plot_h = HEIGHT - HIST_TOP - BOTTOM
    slot = HIST_WIDTH / count
    tallest = max(counts, default=0)
    limit = None if proposed is None else float(proposed)
    out = []
    for i, n in enumerate(counts):
        lo, hi = i * width, (i + 1) * width
        h = plot_h * n / tallest if tallest else 0.0
        if n:
            h = max(h, 1.5)
        out.append(
            Bin(
                lo=lo,
                hi=hi,
                label=_bin_label(lo, hi, whole),
                count=n,
                x=round(i * slot + 0.5, 2),
                y=round(HIST_TOP + plot_h - h, 2),
                width=round(max(slot - 1, 0.5), 2),
                height=round(h, 2),
                past_proposed=limit is not None and (lo > limit if whole else lo >= limit),
            )
        )
    lines = []
    for label, value in (("current", current), ("proposed", proposed)):
        if value is None:
            continue
        at = float(value) + (1 if whole else 0)
        off = at > span
        lines.append(
            CapLine(
                label=label,
                value=value,
                x=HIST_WIDTH if off else round(at / span * HIST_WIDTH, 2),
                off_chart=off,
            )
        )
    return Histogram(
        title=title,
        whole=whole,
        unit=unit,
        bins=out,
        lines=lines,
        x_max=span,
        max_count=tallest,
        runs=len(data),
    )


def _bin_label(lo: float, hi: float, whole: bool) -> str:
    if whole:
        first, last = int(lo), int(hi) - 1
        return str(first) if first == last else f"{first}–{last}"
    return f"{lo:.4g}–{hi:.4g}"
