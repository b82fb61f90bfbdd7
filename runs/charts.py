"""Bar charts as plain geometry for server-rendered SVG. Plain Python, no Django.

`bar_chart` turns a series of (label, value, href) into rectangles in a fixed viewBox; the template
draws them, each bar a link, each with a text title so the numbers are readable without a mouse.
"""

from dataclasses import dataclass
from decimal import Decimal

WIDTH = 600
HEIGHT = 140
TOP = 8  # room above the tallest bar
BOTTOM = 18  # room for the axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: object
    label: str
    href: str


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
