"""Small SVG charts drawn on the server: bars, stacked shares and a line.

No JavaScript and nothing copied from a chart library: each function returns one ``<svg>`` as
``Markup`` with every piece of text escaped here (labels may be cohort or institution names).
Each chart carries a ``<title>`` and ``<desc>`` for screen readers, and every bar, segment and
point has its own ``<title>`` (a tooltip on a PC). The drawing scales with the page width
(``viewBox``), so the same chart fits an office PC and a phone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = 'font-family="system-ui, sans-serif"'
INK, MUTED, GRID = "#1d2b27", "#5f6f6a", "#d9e0dd"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Bar:
    """One bar: ``label`` under it, ``text`` above it, ``title`` as its tooltip."""

    label: str
    value: float
    text: str
    title: str


@dataclass(frozen=True)
class Segment:
    """A part of a stacked bar (a count; the share is computed from the row's total)."""

    label: str
    value: float
    color: str


@dataclass(frozen=True)
class Point:
    """A point of a line chart; ``value`` None leaves a gap."""

    label: str
    value: float | None
    title: str


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _value(value: float, decimal: str) -> str:
    """A shown value with one decimal at most, with the reader's decimal mark (``3,5``)."""
    return _num(value).replace(".", decimal)


def _centred(x: float, text: str, width: int, size: int = 12) -> str:
    """``x`` and ``text-anchor`` of a label centred on ``x`` but kept inside ``0..width``
    (a label at either end is anchored to that end instead of being cut off)."""
    half = len(text) * size * 0.31  # about half the width of the text in system-ui
    if x - half < 1:
        return f'x="{_num(max(x - half, 1.0))}" text-anchor="start"'
    if x + half > width - 1:
        return f'x="{_num(min(x + half, width - 1.0))}" text-anchor="end"'
    return f'x="{_num(x)}" text-anchor="middle"'


def _open(width: int, height: int, title: str, desc: str, css_class: str) -> tuple[str, list[str]]:
    ident = f"chart{next(_ids)}"
    parts = [
        f'<svg class="chart {escape(css_class)}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg" {FONT}>',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
    ]
    return ident, parts


def _empty(width: int, title: str, message: str) -> Markup:
    _, parts = _open(width, 40, title, message, "empty")
    parts.append(f'<text x="0" y="24" font-size="13" fill="{MUTED}">{escape(message)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(bars: Sequence[Bar], *, title: str, max_value: float | None = None,
              empty: str = "", color: str = "#128c7e", width: int = 480,
              height: int = 190) -> Markup:
    """Vertical bars left to right, with ``text`` above each and ``label`` below."""
    if not bars:
        return _empty(width, title, empty)
    top = max_value or max((b.value for b in bars), default=0) or 1
    left, right, head, foot = 8, 8, 22, 34
    plot_h = height - head - foot
    slot = (width - left - right) / len(bars)
    bar_w = min(56.0, slot * 0.64)
    desc = "; ".join(b.title for b in bars)
    _, parts = _open(width, height, title, desc, "bars")
    base = head + plot_h
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" '
                 f'stroke="{GRID}"/>')
    for i, bar in enumerate(bars):
        h = max(0.0, min(bar.value, top)) / top * plot_h
        x = left + slot * i + (slot - bar_w) / 2
        cx = left + slot * i + slot / 2
        parts.append(
            f'<g><title>{escape(bar.title)}</title>'
            f'<rect x="{_num(x)}" y="{_num(base - h)}" width="{_num(bar_w)}" '
            f'height="{_num(max(h, 1.0))}" rx="3" fill="{color}"/>'
            f'<text x="{_num(cx)}" y="{_num(base - h - 6)}" font-size="13" font-weight="600" '
            f'text-anchor="middle" fill="{INK}">{escape(bar.text)}</text>'
            f'<text {_centred(cx, bar.label, width)} y="{base + 20}" font-size="12" '
            f'fill="{MUTED}">{escape(bar.label)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(rows: Sequence[tuple[str, Sequence[Segment]]], *, title: str,
                 empty: str = "", legend: bool = True, width: int = 480,
                 percent_of: str = "{share}% ({count})") -> Markup:
    """One horizontal 100% bar per row (label on the left when there are several rows).

    ``percent_of`` formats each segment's tooltip and legend entry (``{share}``, ``{count}``).
    """
    rows = [(label, segs) for label, segs in rows if sum(s.value for s in segs) > 0]
    if not rows:
        return _empty(width, title, empty)
    labelled = len(rows) > 1
    label_w = 118 if labelled else 0
    row_h, gap, bar_h = 30, 8, 22
    first = rows[0][1]
    legend_h = (len(first) * 20 + 6) if legend else 0
    height = len(rows) * row_h + legend_h + 4
    plot_w = width - label_w - 4
    totals = [sum(s.value for s in segs) for _, segs in rows]
    desc = "; ".join(
        f"{label}: " + ", ".join(f"{s.label} {s.value:g}" for s in segs)
        for (label, segs) in rows)
    _, parts = _open(width, height, title, desc, "stacked")
    for r, ((label, segs), total) in enumerate(zip(rows, totals, strict=True)):
        y = r * row_h + 2
        if labelled:
            shown = label if len(label) <= 17 else label[:16] + "…"
            parts.append(f'<text x="0" y="{y + 15}" font-size="12" fill="{INK}">'
                         f'<title>{escape(label)}</title>{escape(shown)}</text>')
        x = float(label_w)
        for seg in segs:
            if seg.value <= 0:
                continue
            w = seg.value / total * plot_w
            share = round(seg.value / total * 100)
            tip = f"{label + ': ' if labelled else ''}{seg.label} " + percent_of.format(
                share=share, count=f"{seg.value:g}")
            parts.append(f'<g><title>{escape(tip)}</title>'
                         f'<rect x="{_num(x)}" y="{y}" width="{_num(w)}" height="{bar_h}" '
                         f'fill="{seg.color}"/>')
            if w >= 34:
                parts.append(f'<text x="{_num(x + w / 2)}" y="{y + 15}" font-size="12" '
                             f'text-anchor="middle" fill="#fff">{share}%</text>')
            parts.append("</g>")
            x += w
    if legend:
        y0 = len(rows) * row_h + gap
        total = totals[0] if not labelled else sum(totals)
        for i, seg in enumerate(first):
            count = seg.value if not labelled else sum(
                s.value for _, segs in rows for s in segs if s.label == seg.label)
            share = round(count / total * 100) if total else 0
            y = y0 + i * 20
            parts.append(f'<rect x="0" y="{y}" width="12" height="12" rx="2" '
                         f'fill="{seg.color}"/>'
                         f'<text x="18" y="{y + 11}" font-size="13" fill="{INK}">'
                         f'{escape(seg.label)} '
                         f'<tspan fill="{MUTED}">'
                         f'{escape(percent_of.format(share=share, count=f"{count:g}"))}'
                         f'</tspan></text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(points: Sequence[Point], *, title: str, y_min: float, y_max: float,
               empty: str = "", color: str = "#2e86c1", width: int = 480,
               height: int = 190, decimal: str = ".") -> Markup:
    """A line through the points left to right, with a grid line per whole y value;
    values are written with ``decimal`` as the decimal mark."""
    known = [p for p in points if p.value is not None]
    if not known:
        return _empty(width, title, empty)
    left, right, head, foot = 26, 16, 16, 34
    plot_w, plot_h = width - left - right, height - head - foot
    span = (y_max - y_min) or 1
    step = plot_w / max(len(points) - 1, 1)
    desc = "; ".join(p.title for p in known)
    _, parts = _open(width, height, title, desc, "line")

    def xy(i: int, value: float) -> tuple[float, float]:
        x = left + (step * i if len(points) > 1 else plot_w / 2)
        return x, head + plot_h - (value - y_min) / span * plot_h

    tick = y_min
    while tick <= y_max + 1e-9:
        _, y = xy(0, tick)
        parts.append(f'<line x1="{left}" y1="{_num(y)}" x2="{width - right}" y2="{_num(y)}" '
                     f'stroke="{GRID}"/><text x="{left - 8}" y="{_num(y + 4)}" font-size="12" '
                     f'text-anchor="end" fill="{MUTED}">{_num(tick)}</text>')
        tick += 1
    runs: list[list[tuple[float, float]]] = [[]]
    for i, p in enumerate(points):
        if p.value is None:
            runs.append([])
        else:
            runs[-1].append(xy(i, p.value))
    for run in runs:
        if len(run) > 1:
            coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in run)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" '
                         f'stroke-width="2.5" stroke-linejoin="round"/>')
    for i, p in enumerate(points):
        x, _ = xy(i, y_min)
        parts.append(f'<text {_centred(x, p.label, width)} y="{height - 12}" font-size="12" '
                     f'fill="{MUTED}">{escape(p.label)}</text>')
        if p.value is not None:
            _, y = xy(i, p.value)
            shown = _value(p.value, decimal)
            parts.append(f'<g><title>{escape(p.title)}</title>'
                         f'<circle cx="{_num(x)}" cy="{_num(y)}" r="5" fill="{color}"/>'
                         f'<text {_centred(x, shown, width)} y="{_num(y - 10)}" '
                         f'font-size="12" font-weight="600" fill="{INK}">{shown}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
