"""Ranges of model calls, tokens and cost, and how they combine.

A :class:`Tally` counts the model calls one handler makes on one model, as a range:
``calls`` from ``calls_min`` to ``calls_max``, the input tokens of those calls from
``input_min`` to ``input_max``, and the output tokens as ``output_typical`` (the
typical reply length of each call, over the calls of the cheapest path) and
``output_max`` (the ``max_tokens`` bound of each call, over the calls of the costliest
path). An upper end of ``None`` is unbounded or unknown.

:class:`Usage` maps ``(handler, model id)`` to a :class:`Tally` and combines the way a
program runs: ``+`` one after the other, :meth:`Usage.times` a known number of times,
:meth:`Usage.either` one of two paths (branches: per entry the lower ends' minimum and
the upper ends' maximum), :meth:`Usage.maybe` zero or one time, :meth:`Usage.unbounded`
any number of times (a fan-out over a list of unknown size).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

Key = tuple[str, str]  # (handler as the entry module names it, model id)


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _mul(a: int | None, n: int) -> int | None:
    if n == 0:
        return 0
    return None if a is None else a * n


def _max(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


@dataclass(frozen=True)
class Tally:
    """Model calls of one handler on one model (see the module docstring)."""

    calls_min: int = 0
    calls_max: int | None = 0
    input_min: int = 0
    input_max: int | None = 0
    output_typical: int = 0
    output_max: int | None = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.calls_min + other.calls_min, _add(self.calls_max, other.calls_max),
                     self.input_min + other.input_min, _add(self.input_max, other.input_max),
                     self.output_typical + other.output_typical,
                     _add(self.output_max, other.output_max))

    def times(self, n: int) -> Tally:
        return Tally(self.calls_min * n, _mul(self.calls_max, n), self.input_min * n,
                     _mul(self.input_max, n), self.output_typical * n, _mul(self.output_max, n))

    def either(self, other: Tally) -> Tally:
        return Tally(min(self.calls_min, other.calls_min), _max(self.calls_max, other.calls_max),
                     min(self.input_min, other.input_min), _max(self.input_max, other.input_max),
                     min(self.output_typical, other.output_typical),
                     _max(self.output_max, other.output_max))

    def maybe(self) -> Tally:
        """Zero or one time: the lower ends drop to 0."""
        return replace(self, calls_min=0, input_min=0, output_typical=0)

    def unbounded(self) -> Tally:
        """Any number of times: the lower ends drop to 0, the upper ends are unknown
        (stay 0 where one time costs nothing)."""
        return Tally(0, None if self.calls_max != 0 else 0, 0,
                     None if self.input_max != 0 else 0, 0,
                     None if self.output_max != 0 else 0)


@dataclass(frozen=True)
class Price:
    """USD per token."""

    input: float
    output: float


@dataclass(frozen=True)
class Cost:
    """USD, from ``low`` to ``high`` (``None``: unbounded)."""

    low: float = 0.0
    high: float | None = 0.0

    @classmethod
    def of(cls, t: Tally, price: Price) -> Cost:
        """Low: low input × input price + typical output × output price; high: high input
        × input price + max output × output price."""
        low = t.input_min * price.input + t.output_typical * price.output
        if price.input == 0 and price.output == 0:
            return cls(0.0, 0.0)
        if t.input_max is None or t.output_max is None:
            return cls(low, None)
        return cls(low, t.input_max * price.input + t.output_max * price.output)

    def __add__(self, other: Cost) -> Cost:
        high = None if self.high is None or other.high is None else self.high + other.high
        return Cost(self.low + other.low, high)

    def times(self, n: float) -> Cost:
        return Cost(self.low * n, None if self.high is None else self.high * n)

    def either(self, other: Cost) -> Cost:
        high = None if self.high is None or other.high is None else max(self.high, other.high)
        return Cost(min(self.low, other.low), high)

    def maybe(self) -> Cost:
        return Cost(0.0, self.high)

    def unbounded(self) -> Cost:
        return Cost(0.0, None if self.high != 0 else 0.0)


def _cost(a: Cost | None, b: Cost | None, op: Callable[[Cost, Cost], Cost]) -> Cost | None:
    return None if a is None or b is None else op(a, b)


@dataclass
class Usage:
    """Model calls by ``(handler, model id)``, their ``total`` and ``cost`` (``None``: a
    model without a price), and notes on what the numbers leave out.

    The total and the cost are carried through every combination rather than summed
    from the entries: where one of two handlers runs (a route's experts), each entry
    may be 0 at the low end, but the total is not.
    """

    tallies: dict[Key, Tally] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    total: Tally = field(default_factory=Tally)
    cost: Cost | None = field(default_factory=Cost)

    @classmethod
    def one(cls, key: Key, tally: Tally, price: Price | None) -> Usage:
        return cls({key: tally}, [], tally, None if price is None else Cost.of(tally, price))

    def _map(self, fn: Callable[[Tally], Tally], cost: Callable[[Cost], Cost]) -> Usage:
        return Usage({k: fn(t) for k, t in self.tallies.items()}, list(self.notes),
                     fn(self.total), None if self.cost is None else cost(self.cost))

    def __add__(self, other: Usage) -> Usage:
        out = dict(self.tallies)
        for k, t in other.tallies.items():
            out[k] = out[k] + t if k in out else t
        return Usage(out, _merge_notes(self.notes, other.notes), self.total + other.total,
                     _cost(self.cost, other.cost, Cost.__add__))

    def times(self, n: int) -> Usage:
        return self._map(lambda t: t.times(n), lambda c: c.times(n))

    def maybe(self) -> Usage:
        return self._map(Tally.maybe, Cost.maybe)

    def unbounded(self) -> Usage:
        return self._map(Tally.unbounded, Cost.unbounded)

    def either(self, other: Usage) -> Usage:
        out: dict[Key, Tally] = {}
        for k in [*self.tallies, *(k for k in other.tallies if k not in self.tallies)]:
            out[k] = self.tallies.get(k, Tally()).either(other.tallies.get(k, Tally()))
        return Usage(out, _merge_notes(self.notes, other.notes), self.total.either(other.total),
                     _cost(self.cost, other.cost, Cost.either))

    def note(self, text: str) -> Usage:
        if text not in self.notes:
            self.notes.append(text)
        return self


def _merge_notes(a: Iterable[str], b: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))
