"""Hook trigger patterns compiled with a bound, for the checker and the runtime alike.

A trigger is searched with the ``regex`` engine, whose searches take a timeout; the
standard ``re`` engine cannot interrupt a catastrophic pattern, so a pattern the
``regex`` engine cannot compile is refused, never searched with ``re``. Compiling is
bounded too: ``regex`` unrolls counted repetitions when it compiles, so ``a{4294967294}``
or ``(?:(?:(?:a{50}){50}){50}){50}`` would take gigabytes and minutes; a pattern whose
unrolled size passes :data:`MAX_PATTERN_SIZE` is refused before it is compiled.
"""

from __future__ import annotations

import re
from typing import Any

try:  # a regex engine with a timeout: https://pypi.org/project/regex/
    import regex as _regex
except ImportError:  # pragma: no cover - exercised only without the package
    _regex = None

MAX_PATTERN_SIZE = 10_000
"""The most pattern items a trigger may unroll to (a repeated item counts its maximum
number of repeats, or its minimum plus one when unbounded, times its own size). A
trigger is searched in a window of a few hundred characters, so no useful trigger
comes near it."""


class UnboundedPattern(ValueError):
    """A trigger pattern that cannot be searched under a timeout; the message says why."""


MAX_MATCH_PATTERN_SIZE = 100_000
"""The most items a field ``pattern`` or a sketch hole's ``regex`` may unroll to: they
match whole values, which may be long (``[a-z]{100000}`` compiles in milliseconds;
``q{1000000}`` takes 0.4 s and 280 MB)."""


def unrolled_size(pattern: str, limit: int = MAX_PATTERN_SIZE) -> int:
    """How many items ``pattern`` unrolls to (see :data:`MAX_PATTERN_SIZE`), counted on
    the standard library's parse, without compiling. Raises ``re.error`` for a pattern
    ``re`` rejects."""
    from re import _constants as rc
    from re import _parser

    repeats = tuple(getattr(rc, n) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                    if hasattr(rc, n))
    cap = limit + 1  # stop counting once past the limit: the numbers stay small

    def size(items: Any) -> int:
        total = 0
        for op, av in items:
            if op in repeats:
                low, high, sub = av
                times = high if high != rc.MAXREPEAT else low + 1
                total += max(1, times) * size(sub)
            elif op == rc.SUBPATTERN:
                total += size(av[-1])
            elif op == getattr(rc, "ATOMIC_GROUP", None):
                total += size(av)
            elif op in (rc.ASSERT, rc.ASSERT_NOT):
                total += size(av[1])
            elif op == rc.BRANCH:
                total += sum(size(b) for b in av[1])
            elif op == rc.GROUPREF_EXISTS:
                total += sum(size(b) for b in av[1:] if b is not None)
            else:
                total += 1
            if total > cap:
                return cap
        return total

    return size(_parser.parse(pattern))


_DEFAULT: Any = object()


def compile_trigger(pattern: str, engine: Any = _DEFAULT) -> Any:
    """``pattern`` compiled by the ``regex`` engine (``engine``: that module, or None
    when it is missing; by default the one imported here). Raises
    :class:`UnboundedPattern` when it unrolls past :data:`MAX_PATTERN_SIZE`, when the
    engine rejects it, or when the ``regex`` package is missing; ``re.error`` when ``re``
    rejects it (the checker reports that one with its position), or ``OverflowError`` for a
    count past what ``re`` can hold."""
    if engine is _DEFAULT:
        engine = _regex
    if engine is None:
        raise UnboundedPattern("the `regex` package is not installed, and a trigger is "
                               "never searched without a timeout (pip install regex)")
    if unrolled_size(pattern) > MAX_PATTERN_SIZE:
        raise UnboundedPattern(f"the pattern is too large to compile with a bound: its "
                               f"repetitions unroll to more than {MAX_PATTERN_SIZE:,} items "
                               f"(a trigger is searched in the last few hundred characters; "
                               f"use smaller counts)")
    try:
        return engine.compile(pattern)
    except Exception as exc:  # noqa: BLE001 - _regex.error, MemoryError and the like
        raise UnboundedPattern(f"the pattern cannot be searched with a timeout: the regex "
                               f"engine rejects it ({exc})") from None


def size_problem(pattern: str, limit: int = MAX_MATCH_PATTERN_SIZE) -> str | None:
    """Why ``pattern`` is too large to compile with a bound (its repetitions unroll past
    ``limit`` items), or None; also None for a pattern ``re`` rejects or cannot hold
    (reported on its own). Never raises."""
    try:
        too_large = unrolled_size(pattern, limit) > limit
    except (re.error, OverflowError, RecursionError):
        return None
    if too_large:
        return f"its repetitions unroll to more than {limit:,} items (use smaller counts)"
    return None


def trigger_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a trigger searched with a bound, or None (also None when
    ``re`` rejects it: that is reported on its own)."""
    try:
        compile_trigger(pattern)
    except UnboundedPattern as exc:
        return str(exc)
    except (re.error, OverflowError, RecursionError):
        return None
    return None
