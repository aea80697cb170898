"""JSON data at the run's boundaries: bounded parsing and the check that a value is data.

Every value that enters a run from outside — an entry input, a model reply, a tool's
result, ``parse_json`` — is JSON data: ``str``, ``int``, ``float``, ``bool``,
``None``, ``list`` and ``dict`` with string keys.  The bounds below hold for all of
them, so that every later walk of a value (validation, templates, the trace, the
cache, printing) is safe:

- nesting at most :data:`MAX_DEPTH` (200) levels (a cyclic list or dict is nesting
  without end, so it is refused the same way);
- integers of at most :data:`MAX_INT_DIGITS` (4,300) decimal digits, the longest
  Python converts to and from text;
- text is valid Unicode: a lone surrogate (``"\\udc80"`` in a JSON reply, an
  undecodable byte of a command-line argument) becomes U+FFFD.

``loads`` parses text under these bounds; ``to_data`` checks (and converts, see its
docstring) a Python value.  Both raise :class:`NotJSONData` (a ``ValueError``) with a
message that names where in the value the problem is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 200
"""Lists and dicts nested deeper than this are refused."""

MAX_FILE_DEPTH = 400
"""The most a file that wraps values (a trace, a recording) may nest."""

MAX_INT_DIGITS = 4300
"""Integers with more decimal digits are refused (Python's own limit on converting
an integer to or from text)."""

_BIG = 10 ** MAX_INT_DIGITS
_BIG_BITS = _BIG.bit_length() - 1  # below this many bits an int is surely short enough
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class NotJSONData(ValueError):
    """A value or text that is not bounded JSON data; the message says where and why."""


def fix_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (``text`` itself, unchanged,
    when it has none).  Never raises."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def _int_too_long(value: int) -> bool:
    return value.bit_length() > _BIG_BITS and abs(value) >= _BIG


def _where(path: list[str | int]) -> str:
    """``$[0].items[2]``; a long path shows its first and last four steps."""
    def step(p: str | int) -> str:
        return f"[{p}]" if isinstance(p, int) else f".{p}" if p.isidentifier() else f"[{p!r}]"

    if len(path) > 10:
        return ("$" + "".join(step(p) for p in path[:4]) + f"…({len(path) - 8} more)…"
                + "".join(step(p) for p in path[-4:]))
    return "$" + "".join(step(p) for p in path)


def _kind(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ not in ("builtins", None) \
        else t.__qualname__


def to_data(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` as bounded JSON data (see the module docstring).

    Tuples become lists and pydantic models their data by field alias (what a Python
    tool may return for a list or a record); strings get lone surrogates replaced.
    Anything else that is not JSON data (bytes, sets, datetimes, generators, other
    objects), nesting over :data:`MAX_DEPTH`, a cycle, an integer over
    :data:`MAX_INT_DIGITS` digits or a dict key that is not a string raises
    :class:`NotJSONData` naming the place (``$[0].items``) and the kind of value.
    Returns ``value`` itself when nothing had to change.
    """
    return _data(value, [], 0, max_depth)


def _data(value: Any, path: list[str | int], depth: int, limit: int) -> Any:
    t = type(value)
    if t is str:
        return fix_text(value)
    if value is None or t is bool or t is float:
        return value
    if t is int:
        if _int_too_long(value):
            raise NotJSONData(f"{_where(path)} is an integer of more than {MAX_INT_DIGITS} digits")
        return value
    if t is list or t is tuple or t is dict or isinstance(value, (list, tuple, Mapping)):
        if depth >= limit:
            raise NotJSONData(f"{_where(path)} is nested deeper than {limit} levels "
                              f"(or is part of a cycle)")
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            changed = t is not dict
            for k, v in value.items():
                if type(k) is not str:
                    raise NotJSONData(f"{_where(path)} has a key that is not text: "
                                      f"{_kind(k)} {_short_repr(k)}")
                key = fix_text(k)
                path.append(key)
                item = _data(v, path, depth + 1, limit)
                path.pop()
                changed = changed or item is not v or key is not k
                out[key] = item
            return out if changed else value
        items = []
        changed = t is not list
        for i, v in enumerate(value):
            path.append(i)
            item = _data(v, path, depth + 1, limit)
            path.pop()
            changed = changed or item is not v
            items.append(item)
        return items if changed else value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _data(int(value), path, depth, limit)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return fix_text(str(value))
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        if depth >= limit:
            raise NotJSONData(f"{_where(path)} is nested deeper than {limit} levels")
        return _data(dump(by_alias=True), path, depth + 1, limit)
    raise NotJSONData(f"{_where(path)} is a {_kind(value)} ({_short_repr(value)}): return "
                      f"text, numbers, booleans, none, lists and dicts only")


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails is not our problem
        return "?"
    text = fix_text(text)
    return text if len(text) <= 60 else text[:59] + "…"


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text into bounded JSON data (see the module docstring).

    ``max_depth`` may be raised for files that wrap values of that depth (a trace holds
    them a few levels down), up to :data:`MAX_FILE_DEPTH`.
    Raises :class:`NotJSONData` for nesting over ``max_depth``, an integer over
    :data:`MAX_INT_DIGITS` digits, and :class:`json.JSONDecodeError` (also a
    ``ValueError``) for text that is not JSON.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise NotJSONData(f"the JSON is nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # Python's limit on integer digits
        raise NotJSONData(f"the JSON holds an integer of more than {MAX_INT_DIGITS} digits "
                          f"({exc})") from None
    return to_data(value, min(max_depth, MAX_FILE_DEPTH))


def raw_decode(decoder: json.JSONDecoder, text: str, start: int) -> tuple[Any, int]:
    """``decoder.raw_decode(text, start)`` under the same bounds as :func:`loads`.

    Raises :class:`json.JSONDecodeError` or :class:`NotJSONData`."""
    try:
        value, end = decoder.raw_decode(text, start)
    except RecursionError:
        raise NotJSONData(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise NotJSONData(f"the JSON holds an integer of more than {MAX_INT_DIGITS} digits "
                          f"({exc})") from None
    return to_data(value), end
