"""Server-rendered SVG charts: geometry here, markup in templates/billing/_chart_*.html.

No charting library: a column chart and a bar list cover the dashboards, and
SVG from the server needs no build step and no script.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing.selectors import Line

Number = Decimal | int


@dataclass(frozen=True)
class Bar:
    label: str
    value: Number
    display: str
    x: float
    y: float
    width: float
    height: float

    @property
    def mid_x(self) -> float:
        return round(self.x + self.width / 2, 2)

    @property
    def mid_y(self) -> float:
        return round(self.y + self.height / 2, 2)

    @property
    def end_x(self) -> float:
        return round(self.x + self.width + 6, 2)


@dataclass(frozen=True)
class Tick:
    y: float
    display: str


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    plot_left: int
    plot_bottom: float

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)

    @property
    def label_every(self) -> int:
        """Label every n-th column, so at most about eight labels share the axis."""
        return max(1, math.ceil(len(self.bars) / 8))

    @property
    def label_y(self) -> float:
        return self.plot_bottom + 18


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 or 10 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def columns(
    name: str,
    title: str,
    lines: Sequence[Line],
    *,
    value: Callable[[Line], Number],
    display: Callable[[Number], str],
    width: int = 720,
    height: int = 220,
) -> Chart:
    """One column per line (e.g. per day), scaled to a rounded maximum with four gridlines."""
    left, top, bottom = 64, 12, 28
    plot_width, plot_height = width - left - 8, height - top - bottom
    values = [value(line) for line in lines]
    ceiling = _nice_ceiling(float(max(values, default=0)))
    slot = plot_width / max(1, len(lines))
    bars = []
    for index, (line, amount) in enumerate(zip(lines, values, strict=True)):
        bar_height = plot_height * float(amount) / ceiling
        bars.append(
            Bar(
                label=line.label,
                value=amount,
                display=display(amount),
                x=round(left + (index + 0.15) * slot, 2),
                y=round(top + plot_height - bar_height, 2),
                width=round(slot * 0.7, 2),
                height=round(bar_height, 2),
            )
        )
    ticks = [
        Tick(
            round(top + plot_height * (1 - share), 2), display(_as_number(ceiling * share, values))
        )
        for share in (0, 0.25, 0.5, 0.75, 1)
    ]
    return Chart(name, title, width, height, bars, ticks, left, top + plot_height)


def rows(
    name: str,
    title: str,
    lines: Sequence[Line],
    *,
    value: Callable[[Line], Number],
    display: Callable[[Number], str],
    width: int = 720,
    row_height: int = 28,
    limit: int = 10,
) -> Chart:
    """A ranked bar list (e.g. cost per model): the label on the left, the bar, the figure."""
    shown = list(lines)[:limit]
    left, right = 200, 96
    plot_width = width - left - right
    values = [value(line) for line in shown]
    largest = float(max(values, default=0)) or 1.0
    bars = [
        Bar(
            label=line.label,
            value=amount,
            display=display(amount),
            x=left,
            y=index * row_height + 4,
            width=round(plot_width * float(amount) / largest, 2),
            height=row_height - 8,
        )
        for index, (line, amount) in enumerate(zip(shown, values, strict=True))
    ]
    height = max(1, len(shown)) * row_height
    return Chart(name, title, width, height, bars, [], left, height)


def _as_number(amount: float, like: Sequence[Number]) -> Number:
    if like and isinstance(like[0], int):
        return round(amount)
    return Decimal(str(round(amount, 8)))
