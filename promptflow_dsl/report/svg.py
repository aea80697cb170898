"""Plots as inline SVG, drawn here in Python (no plotting library): metric bars with
their intervals, histograms, and a step chart of calls in flight.

Every function returns one ``<svg>`` element as text; every label is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .page import esc

COLORS = ("#3b6fd8", "#e07b39", "#2e9e6a", "#b8475c")


@dataclass(frozen=True)
class Bar:
    """One bar: its value, an interval (``lo``, ``hi``) or ``None``, and its series."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    series: int = 0


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 0.01:
        return f"{x:.3g}"
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _empty(width: int, height: int, text: str) -> str:
    return (f'<svg class="plot" width="{width}" height="{height}" role="img"><text x="8" y="{height // 2}" '
            f'class="muted">{esc(text)}</text></svg>')


def bar_chart(groups: Sequence[tuple[str, Sequence[Bar]]], *, title: str = "",
              legend: Sequence[str] = (), width: int = 560) -> str:
    """Horizontal bars, one group per label (a metric), one bar per series, each with
    a whisker for its interval. The axis starts at 0 (or the smallest value below it)
    and ends at 1 for values within [0, 1], else at the largest value."""
    values = [v for _, bars in groups for b in bars
              for v in (b.value, b.lo, b.hi) if v is not None and math.isfinite(v)]
    if not values:
        return _empty(width, 40, f"{title}: nothing scored" if title else "nothing scored")
    low = min(0.0, *values)
    high = max(values)
    if low >= 0 and high <= 1:
        high = 1.0
    if high <= low:
        high = low + 1.0
    label_w, pad, bar_h = 130, 8, 14
    plot_w = width - label_w - 60
    per_group = max(len(bars) for _, bars in groups) * (bar_h + 3) + 8
    top = 22 if title else 6
    legend_h = 16 * len(legend) + (4 if legend else 0)
    height = top + legend_h + per_group * len(groups) + 22

    def x(v: float) -> float:
        return label_w + (v - low) / (high - low) * plot_w

    out = [f'<svg class="plot" width="{width}" height="{height}" role="img">']
    if title:
        out.append(f'<text x="{pad}" y="15" class="title">{esc(title)}</text>')
    for i, name in enumerate(legend):
        ly = top + 2 + 16 * i
        out.append(f'<rect x="{label_w}" y="{ly}" width="10" height="10" '
                   f'fill="{COLORS[i % len(COLORS)]}"/><text x="{label_w + 14}" y="{ly + 9}">'
                   f'{esc(name)}</text>')
    y = top + legend_h
    for label, bars in groups:
        out.append(f'<text x="{label_w - 6}" y="{y + per_group / 2}" text-anchor="end">'
                   f'{esc(label)}</text>')
        by = y + 3
        for b in bars:
            color = COLORS[b.series % len(COLORS)]
            if b.value is not None and math.isfinite(b.value):
                x0, x1 = sorted((x(0.0 if low <= 0 else low), x(b.value)))
                out.append(f'<rect x="{x0:.1f}" y="{by}" width="{max(x1 - x0, 1):.1f}" '
                           f'height="{bar_h}" fill="{color}" opacity="0.8"/>')
                out.append(f'<text x="{x(max(b.value, b.hi or b.value)) + 4:.1f}" '
                           f'y="{by + bar_h - 3}" class="val">{esc(_num(b.value))}</text>')
            else:
                out.append(f'<text x="{label_w + 4}" y="{by + bar_h - 3}" class="muted">'
                           'not scored</text>')
            if b.lo is not None and b.hi is not None:
                cy, lo, hi = by + bar_h / 2, x(b.lo), x(b.hi)
                out.append(f'<path d="M{lo:.1f} {cy - 5}v10M{lo:.1f} {cy}H{hi:.1f}'
                           f'M{hi:.1f} {cy - 5}v10" stroke="#222" fill="none"/>')
            by += bar_h + 3
        y += per_group
    axis_y = y + 2
    out.append(f'<path d="M{label_w} {axis_y}H{label_w + plot_w}" stroke="#888"/>')
    for t in (low, (low + high) / 2, high):
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 14}" text-anchor="middle" '
                   f'class="muted">{esc(_num(t))}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(values: Sequence[float], *, title: str, unit: str = "", bins: int = 20,
              width: int = 360, height: int = 150) -> str:
    """A histogram of ``values`` (non-finite ones left out) in ``bins`` equal bins,
    with the count of each bin as its bar's tooltip."""
    data = [v for v in values if v is not None and math.isfinite(v)]
    if not data:
        return _empty(width, 40, f"{title}: no values")
    low, high = min(data), max(data)
    if high == low:
        high = low + (abs(low) or 1.0) * 1e-6 + 1e-9
        bins = 1
    counts = [0] * bins
    for v in data:
        counts[min(int((v - low) / (high - low) * bins), bins - 1)] += 1
    top, bottom, left = 22, 20, 8
    plot_h, plot_w = height - top - bottom, width - 2 * left
    most = max(counts)
    bw = plot_w / bins
    out = [f'<svg class="plot" width="{width}" height="{height}" role="img">',
           f'<text x="{left}" y="15" class="title">{esc(title)} ({len(data)} values)</text>']
    for i, c in enumerate(counts):
        if not c:
            continue
        h = c / most * plot_h
        lo = low + (high - low) * i / bins
        hi = low + (high - low) * (i + 1) / bins
        out.append(f'<rect x="{left + i * bw + 0.5:.1f}" y="{top + plot_h - h:.1f}" '
                   f'width="{max(bw - 1, 1):.1f}" height="{h:.1f}" fill="{COLORS[0]}">'
                   f'<title>{esc(f"{_num(lo)}–{_num(hi)}{unit}: {c}")}</title></rect>')
    y = top + plot_h
    out.append(f'<path d="M{left} {y}H{left + plot_w}" stroke="#888"/>')
    out.append(f'<text x="{left}" y="{y + 14}" class="muted">{esc(_num(low) + unit)}</text>')
    out.append(f'<text x="{left + plot_w}" y="{y + 14}" text-anchor="end" class="muted">'
               f'{esc(_num(high) + unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def step_chart(points: Sequence[tuple[float, int]], *, title: str, span: float,
               width: int = 560, height: int = 70) -> str:
    """A step line of an integer over time: ``points`` are ``(time, value)`` changes,
    in time order, over ``[0, span]`` (the calls in flight during a run)."""
    if not points or span <= 0:
        return _empty(width, 30, f"{title}: nothing ran")
    most = max(v for _, v in points) or 1
    top, bottom, left = 18, 4, 8
    plot_h, plot_w = height - top - bottom, width - 2 * left

    def x(t: float) -> float:
        return left + max(0.0, min(t, span)) / span * plot_w

    def y(v: int) -> float:
        return top + plot_h - v / most * plot_h

    d = [f"M{x(0):.1f} {y(0):.1f}"]
    last = 0
    for t, v in points:
        d.append(f"L{x(t):.1f} {y(last):.1f}L{x(t):.1f} {y(v):.1f}")
        last = v
    d.append(f"L{x(span):.1f} {y(last):.1f}L{x(span):.1f} {y(0):.1f}Z")
    return (f'<svg class="plot" width="{width}" height="{height}" role="img"><text x="{left}" y="12" class="title">'
            f'{esc(title)} (at most {most})</text><path d="{"".join(d)}" fill="{COLORS[0]}" '
            f'opacity="0.6"/></svg>')
