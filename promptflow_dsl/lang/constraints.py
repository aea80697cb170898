"""Field constraints: ``str(min_length=1, max_length=200, pattern=r"...")``,
``int(min=1, max=5)``, ``float(min=0.0, max=1.0)``, ``list[T](min_items=1, max_items=5)``.

A :class:`Constraints` value rides on the constrained type (``StrType``, ``IntType``,
``FloatType``, ``ListType`` of :mod:`.types`) and gives everything the rest of the
language needs from it, in one place:

* :meth:`Constraints.show` — the spelling in types shown to users (``max_length=200``);
* :meth:`Constraints.schema` — the JSON-schema keywords (``minLength``, ``maxLength``,
  ``pattern``, ``minimum``, ``maximum``, ``minItems``, ``maxItems``);
* :meth:`Constraints.violation` — what is wrong with a value (``at most 200 characters,
  got 245``), or ``None``;
* :func:`disjoint` — two constraints no value can meet together.

``pattern`` must match the **whole** text (Python's ``re.fullmatch``).  The schema sends
it anchored, ``^(...)$``, with the positive shorthand classes ``\\d``, ``\\w`` and
``\\s`` spelled as ASCII classes, which every JSON-schema dialect and llama.cpp's
schema-to-grammar converter read the same way; the runtime validates every value with
Python's own rules anyway.  Lengths count characters (code points).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, fields
from typing import Any

import regex

from .trigger_patterns import UnboundedPattern, size_problem

__all__ = ["Constraints", "NAMES", "disjoint", "schema_pattern"]

# constraint names each base type takes, in the order they are shown
NAMES: dict[str, tuple[str, ...]] = {
    "str": ("min_length", "max_length", "pattern"),
    "int": ("min", "max"),
    "float": ("min", "max"),
    "list": ("min_items", "max_items"),
}


@dataclass(frozen=True)
class Constraints:
    """The constraints of one type; unset ones are ``None``.  Hashable (types are)."""

    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    min: int | float | None = None
    max: int | float | None = None
    min_items: int | None = None
    max_items: int | None = None

    def items(self) -> list[tuple[str, Any]]:
        """The set constraints as (name, value), in declaration-field order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) is not None]

    def show(self) -> str:
        """``min_length=1, max_length=200`` (a pattern as a raw string where it can be)."""
        return ", ".join(f"{k}={_show(v)}" for k, v in self.items())

    def schema(self) -> dict[str, Any]:
        """The JSON-schema keywords of these constraints."""
        out: dict[str, Any] = {}
        for name, key in (("min_length", "minLength"), ("max_length", "maxLength"),
                          ("min", "minimum"), ("max", "maximum"),
                          ("min_items", "minItems"), ("max_items", "maxItems")):
            v = getattr(self, name)
            if v is not None:
                out[key] = v
        if self.pattern is not None:
            out["pattern"] = schema_pattern(self.pattern)
        return out

    def violation(self, value: Any) -> str | None:
        """Why ``value`` (already of the right base type) breaks a constraint, or ``None``.

        Never raises (a pattern that does not compile was refused by the checker; here
        it is reported as the violation)."""
        if isinstance(value, str):
            n = len(value)
            if self.min_length is not None and n < self.min_length:
                return f"at least {_count(self.min_length, 'character')}, got {n}"
            if self.max_length is not None and n > self.max_length:
                return f"at most {_count(self.max_length, 'character')}, got {n}"
            if self.pattern is not None:
                try:
                    ok = full_match(self.pattern, value)
                except UnboundedPattern as exc:
                    return f"the pattern {_show(self.pattern)} cannot be matched with a bound ({exc})"
                except (re.error, regex.error) as exc:
                    return f"the pattern {_show(self.pattern)} is not a valid regular expression ({exc})"
                except TimeoutError:
                    return (f"the pattern {_show(self.pattern)} took more than "
                            f"{PATTERN_TIMEOUT:g} s on {_short(value)} (it backtracks too much: "
                            "simplify it)")
                if not ok:
                    return f"{_short(value)} does not match the pattern {_show(self.pattern)}"
            return None
        if isinstance(value, (list, tuple)):
            n = len(value)
            if self.min_items is not None and n < self.min_items:
                return f"at least {_count(self.min_items, 'item')}, got {n}"
            if self.max_items is not None and n > self.max_items:
                return f"at most {_count(self.max_items, 'item')}, got {n}"
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                return f"at least {_show(self.min)}, got {_show(value)}"
            if self.max is not None and value > self.max:
                return f"at most {_show(self.max)}, got {_show(value)}"
        return None


def disjoint(a: Constraints, b: Constraints) -> str | None:
    """Why no value can meet both ``a`` and ``b`` (a range of one entirely outside the
    other's), or ``None``.  Patterns are not compared."""
    for lo, hi, what in (("min_length", "max_length", "length"), ("min", "max", "value"),
                         ("min_items", "max_items", "number of items")):
        for x, y in ((a, b), (b, a)):
            low, high = getattr(x, lo), getattr(y, hi)
            if low is not None and high is not None and low > high:
                return f"its {what} is at least {_show(low)}, above the {hi}={_show(high)} wanted"
    return None


def schema_pattern(pattern: str) -> str:
    """``pattern`` as a JSON-schema ``pattern``: anchored (whole-text match) and with
    ``\\d``, ``\\w``, ``\\s`` written as ASCII classes (see the module docstring)."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            spelled = _SHORTHAND.get(nxt)
            if spelled is not None:
                out.append(spelled if in_class else f"[{spelled}]")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            # a ']' right after '[' or '[^' is a literal member
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1:i + 2] == "]":
                out.append("\\]")
                i += 1
        elif ch == "]" and in_class:
            in_class = False
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "^(" + "".join(out) + ")$"


_SHORTHAND = {"d": "0-9", "w": "A-Za-z0-9_", "s": " \\t\\n\\r\\f\\v"}


PATTERN_TIMEOUT = 1.0
"""Seconds a ``pattern`` may take on one value (a pattern that backtracks without bound,
such as ``(a+)+$``, fails the value instead of stalling the check or the run)."""


def full_match(pattern: str, text: str) -> bool:
    """Whether regular expression ``pattern`` matches the whole of ``text``, searched under
    :data:`PATTERN_TIMEOUT`. Raises ``TimeoutError`` past it, ``regex.error`` for a pattern
    the engine rejects, :class:`UnboundedPattern` for one too large to compile with a
    bound."""
    return _compiled(pattern).fullmatch(text, timeout=PATTERN_TIMEOUT) is not None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    """The pattern compiled by the ``regex`` module, which can bound a match in time.
    Raises ``regex.error``, or :class:`UnboundedPattern` for a pattern whose repetitions
    unroll too far to compile (the checker refuses it first)."""
    problem = size_problem(pattern)
    if problem is not None:
        raise UnboundedPattern(problem)
    try:
        return regex.compile(pattern)
    except (OverflowError, RecursionError) as exc:
        raise regex.error(str(exc) or "the pattern is nested too deeply") from None


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _short(text: str) -> str:
    shown = json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:36] + '..."'


def _show(v: Any) -> str:
    if isinstance(v, str):
        if '"' not in v and "\n" not in v and not v.endswith("\\"):
            return f'r"{v}"'
        return json.dumps(v, ensure_ascii=False)
    return repr(v)
