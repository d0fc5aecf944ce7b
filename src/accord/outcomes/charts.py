"""Server-side SVG charts: a metric over time against its target, and ageing bars.

Hand-written SVG (no JavaScript, no library): small, accessible (a ``<title>`` and
``role="img"``), every text escaped. Points are drawn only for buckets with cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from accord.outcomes.measures import METRICS, Figure, show

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 28


def line_chart(
    title: str,
    metric: str,
    points: Sequence[tuple[datetime, Figure]],
    *,
    target: float | None = None,
    target_ok_below: bool = True,
) -> str:
    """The metric per bucket as a line, the target as a dashed line; points that miss
    the target are drawn hollow and red."""
    shown = [(start, fig.value, fig.n) for start, fig in points if fig.value is not None]
    top = max([v for _, v, _ in shown] + ([target] if target is not None else []) + [0.0])
    top = 100.0 if METRICS[metric].kind == "rate" else _nice(top * 1.1 if top else 1.0)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (inner_w * i / max(1, len(shown) - 1) if len(shown) > 1 else inner_w / 2)

    def y(v: float) -> float:
        return TOP + inner_h * (1 - v / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="#fafafa" '
        'stroke="#ddd"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#555">{escape(show(metric, v))}</text>'
        )
    if target is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(target):.1f}" y2="{y(target):.1f}" '
            'stroke="#c60" stroke-dasharray="5 4" stroke-width="1.5"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{y(target) - 4:.1f}" font-size="10" '
            f'text-anchor="end" fill="#c60">target {escape(show(metric, target))}</text>'
        )
    if not shown:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="12" '
            'fill="#777">no cases in this period</text>'
        )
    else:
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v, _) in enumerate(shown))
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2a6" stroke-width="2"/>')
        step = max(1, len(shown) // 8)
        for i, (start, v, n) in enumerate(shown):
            missed = target is not None and ((v > target) if target_ok_below else (v < target))
            fill = "#fff" if missed else "#2a6"
            stroke = "#c00" if missed else "#2a6"
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{fill}" '
                f'stroke="{stroke}" stroke-width="1.5"><title>{escape(start.date().isoformat())}'
                f": {escape(show(metric, v))} ({n} cases)</title></circle>"
            )
            if i % step == 0:
                parts.append(
                    f'<text x="{x(i):.1f}" y="{HEIGHT - 10}" font-size="10" text-anchor="middle" '
                    f'fill="#555">{escape(start.strftime("%d %b"))}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: dict[str, int]) -> str:
    """Counts as horizontal bars (the backlog's ageing)."""
    row_h = 22
    height = TOP + row_h * len(bars) + 8
    most = max(bars.values(), default=0) or 1
    width_for = WIDTH - 130 - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, count) in enumerate(bars.items()):
        y = TOP + i * row_h
        w = width_for * count / most
        parts.append(
            f'<text x="120" y="{y + 14}" font-size="11" text-anchor="end" fill="#333">'
            f"{escape(label)}</text>"
            f'<rect x="130" y="{y + 3}" width="{w:.1f}" height="15" fill="#58a"/>'
            f'<text x="{136 + w:.1f}" y="{y + 14}" font-size="11" fill="#333">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _nice(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return value
