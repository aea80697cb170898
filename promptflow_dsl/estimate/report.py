"""An estimate as a table and as JSON.

Per ``(handler, model)`` and in total: model calls ``min..max``, input tokens
``low..high``, output tokens typical and max, and the cost ``low..high`` in USD:
low = low input tokens × the input price + typical output tokens × the output price;
high = high input tokens × the input price + max output tokens × the output price. An
unknown upper end shows as ``?`` (``null`` in JSON); a model without a price has no
cost (``unknown``), and then neither has the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .models import Models
from .tally import Cost, Price, Tally, Usage


@dataclass
class Line:
    handler: str
    model: str  # "" for a handler that calls no model (a tool)
    tally: Tally
    price: Price | None

    def cost(self) -> Cost | None:
        """``None`` without a price."""
        if not self.model:
            return Cost()
        return None if self.price is None else Cost.of(self.tally, self.price)


def lines_of(usage: Usage, models: Models) -> list[Line]:
    return [Line(handler, model, tally, models.price(model) if model else None)
            for (handler, model), tally in usage.tallies.items()]


# ------------------------------------------------------------------ text

def _n(x: int | None) -> str:
    return "?" if x is None else f"{x:,}"


def span(lo: int, hi: int | None) -> str:
    """``3`` or ``1..3`` or ``1..?``."""
    return _n(lo) if hi == lo else f"{_n(lo)}..{_n(hi)}"


def money(x: float | None) -> str:
    if x is None:
        return "?"
    if x == 0:
        return "$0"
    if x >= 100:
        return f"${x:,.0f}"
    if x >= 1:
        return f"${x:,.2f}"
    if x < 1e-6:
        return "<$0.000001"
    digits = 1 - math.floor(math.log10(x))  # two significant digits
    return f"${x:.{digits}f}"


def cost_text(c: Cost | None) -> str:
    if c is None:
        return "unknown"
    return money(c.low) if c.high == c.low else f"{money(c.low)}..{money(c.high)}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {2, 3, 4, 5}

    def fmt(r: list[str]) -> str:
        cells = [c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(r)]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), *(fmt(r) for r in rows)])


def render_lines(lines: list[Line], usage: Usage) -> str:
    header = ["handler", "model", "calls", "input tokens", "output typical", "output max", "cost"]
    rows = [[ln.handler, ln.model or "-", span(ln.tally.calls_min, ln.tally.calls_max),
             span(ln.tally.input_min, ln.tally.input_max), _n(ln.tally.output_typical),
             _n(ln.tally.output_max), cost_text(ln.cost())] for ln in lines]
    if len(lines) != 1:
        t = usage.total
        rows.append(["total", "", span(t.calls_min, t.calls_max), span(t.input_min, t.input_max),
                     _n(t.output_typical), _n(t.output_max), cost_text(usage.cost)])
    return table(rows, header)


# ------------------------------------------------------------------ JSON

def tally_json(t: Tally) -> dict[str, Any]:
    return {"calls": {"min": t.calls_min, "max": t.calls_max},
            "input_tokens": {"min": t.input_min, "max": t.input_max},
            "output_tokens": {"typical": t.output_typical, "max": t.output_max}}


def cost_json(c: Cost | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"low": round(c.low, 12), "high": None if c.high is None else round(c.high, 12),
            "currency": "USD"}
