"""Dataset rows as values of an ``eval``'s row type: one rule for the checker (which
validates every row) and the runtime (which builds each row's ``row``).

A row is a JSON object (a JSONL line) or a CSV record (column name → text). Its value
is the row type's record:

* each field takes the row's column (or key) of the same name; other columns are
  left out, so a dataset may carry columns the program does not read;
* a JSONL value is taken as it is and must fit the field's type exactly (the rules of
  :func:`~promptflow_dsl.lang.types.validate`: an ``int`` fits ``float``, nothing else
  is converted);
* a CSV cell is text, converted by the field's type: a text field (``str``, a literal
  union, ``any``) takes the text as it is; any other field (``int``, ``float``,
  ``bool``, lists, dicts, records) reads it as JSON (``42``, ``0.5``, ``true``,
  ``["a", "b"]``; ``NaN`` is refused) and the value must then fit. An **empty cell**
  is no value: ``none`` for an optional field, the default for a field with one, the
  empty text for a required text field, and an error otherwise;
* a missing field with a default takes it, an optional one is ``none``, a required one
  is an error.

:func:`row_value` raises :class:`RowTypeError`, whose message starts with what does not
fit (``field 'gold': expected "positive" | "negative", got str "angry"``).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from .rows import strict_json
from .types import (
    AnyType,
    LiteralType,
    OptionalType,
    RecordType,
    StrType,
    Type,
    TypeValidationError,
)
from .values import conform

__all__ = ["ABSENT", "RowTypeError", "cell_value", "missing_columns", "row_value"]

ABSENT: Any = object()
"""What :func:`cell_value` gives for an empty cell of a slot with a default."""


class RowTypeError(ValueError):
    """A row that does not fit the row type; ``field`` is the top-level field concerned
    (``None`` when the problem is not one field's)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _is_text(t: Type) -> bool:
    base = t.inner if isinstance(t, OptionalType) else t
    return isinstance(base, (StrType, LiteralType, AnyType))


def cell_value(text: str, t: Type, *, required: bool) -> Any:
    """The value of the CSV cell ``text`` for a slot (a field, a parameter) of type ``t``:
    the text itself for a text type, else the JSON it holds; for an empty cell ``None``
    when ``t`` is optional, :data:`ABSENT` (take the default) when the slot is not
    ``required``, ``""`` for a text type. The value is not checked against ``t``.

    Raises :class:`RowTypeError` (without a field) for an empty cell that cannot be
    none of those, and for text that is not JSON where JSON is needed.
    """
    if text == "":
        if isinstance(t, OptionalType):
            return None
        if not required:
            return ABSENT
        if _is_text(t):
            return ""
        raise RowTypeError(f"the cell is empty, and {t.show()} needs a value")
    if _is_text(t):
        return text
    try:
        return strict_json(text)
    except (ValueError, RecursionError):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise RowTypeError(f"expected {t.show()} written as JSON, got the text "
                           f"{shown!r}") from None


def row_value(row: Mapping[str, Any], t: RecordType, *, text_cells: bool = False) -> dict[str, Any]:
    """The row ``row`` as a value of the record type ``t`` (plain data, defaults filled
    in). ``text_cells``: the values are CSV cells, converted as the module says.

    Each field's value is validated on its own (:func:`~promptflow_dsl.lang.values.conform`),
    so no record model is built per row. Raises :class:`RowTypeError` when the row does
    not fit.
    """
    out: dict[str, Any] = {}
    for f in t.fields:
        value = row.get(f.name, ABSENT)
        if text_cells and isinstance(value, str):
            try:
                value = cell_value(value, f.type, required=f.required)
            except RowTypeError as exc:
                raise RowTypeError(f"field '{f.name}': {exc.message}", f.name) from None
        if value is ABSENT:
            if f.required:
                unused = [str(k) for k in row if t.field(str(k)) is None]
                close = difflib.get_close_matches(f.name, unused, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise RowTypeError(f"missing required field '{f.name}' of type "
                                   f"{f.type.show()}{hint}", f.name)
            out[f.name] = copy.deepcopy(f.default)
            continue
        try:
            out[f.name] = conform(value, f.type)
        except TypeValidationError as exc:
            where = f.name + exc.path[1:]
            raise RowTypeError(f"field '{where}': {exc.message}", f.name) from None
    return out


def missing_columns(columns: Iterable[str], t: RecordType) -> list[str]:
    """One message per required field of ``t`` that no column names (a CSV header, whose
    rows would all miss it), with the closest unused column; ``[]`` when none is missing.
    Never raises."""
    have = list(columns)
    unused = [c for c in have if t.field(c) is None]
    out = []
    for f in t.fields:
        if f.required and f.name not in have:
            close = difflib.get_close_matches(f.name, unused, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(f"no column '{f.name}' for the required field '{f.name}' of "
                       f"{t.show()}{hint}")
    return out
