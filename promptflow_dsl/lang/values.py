"""Run-time values and the conversions at the program's boundaries.

Inside the runtime every value is plain JSON-like data: ``str``, ``int``,
``float``, ``bool``, ``None``, ``list`` and ``dict`` (records are dicts keyed by
their ``.pflow`` field names).  At a boundary a value is checked against its
declared type with :func:`promptflow_dsl.lang.types.validate`: records become
pydantic instances for Python tools and come back as dicts.
"""

from __future__ import annotations

import json
from typing import Any

from .types import AnyType, OptionalType, Type, TypeValidationError, validate

__all__ = ["plain", "conform", "to_python", "dumps", "TextDict", "TextList", "for_template",
           "TypeValidationError"]


def plain(value: Any) -> Any:
    """Plain JSON-like data from ``value`` (pydantic models dumped by their pflow names)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return plain(dump(by_alias=True))
    return value


def conform(value: Any, t: Type) -> Any:
    """Check ``value`` against ``t`` and return it as plain data.

    Raises :class:`TypeValidationError` with a JSON path and the expected type.
    """
    if isinstance(t, AnyType):
        return plain(value)
    return plain(validate(plain(value), t))


def to_python(value: Any, t: Type) -> Any:
    """The value a Python tool receives for a parameter of type ``t`` (records as models).

    Raises :class:`TypeValidationError` when the value does not fit.
    """
    if isinstance(t, AnyType):
        return value
    if isinstance(t, OptionalType) and value is None:
        return None
    return validate(plain(value), t)


def dumps(value: Any) -> str:
    """Compact JSON with non-ASCII kept (the `json` built-in)."""
    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))


class TextDict(dict):
    """A dict that renders as JSON text in a template (``{{ record }}``)."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


class TextList(list):
    """A list that renders as JSON text in a template (``{{ items }}``)."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


def for_template(value: Any) -> Any:
    """Wrap containers so that inserting one into a template shows JSON, not Python repr."""
    if isinstance(value, dict):
        return TextDict({k: for_template(v) for k, v in value.items()})
    if isinstance(value, list):
        return TextList(for_template(v) for v in value)
    return value
