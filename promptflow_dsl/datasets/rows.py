"""Dataset rows for the engine: the readers of :mod:`promptflow_dsl.lang.rows` (shared
with the checker, which validates an ``eval``'s data), and the ``--map`` column
renames.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..lang.rows import (
    FORMATS,
    DatasetError,
    Row,
    RowItem,
    ValidationReport,
    count_rows,
    csv_header,
    dataset_digest,
    dataset_format,
    iter_row_items,
    iter_row_lines,
    iter_rows,
    validate_rows,
)

__all__ = [
    "DatasetError", "FORMATS", "Row", "RowItem", "ValidationReport", "csv_header",
    "count_rows", "dataset_digest", "dataset_format", "iter_row_items", "iter_row_lines",
    "iter_rows", "map_columns", "parse_mapping", "validate_rows",
]


# ------------------------------------------------------------------- column mapping

def parse_mapping(specs: Iterable[str]) -> dict[str, str]:
    """``["param=column", ...]`` (the ``--map`` options) → ``{param: column}``.

    The column is everything after the first ``=``. Raises ``ValueError`` for an item
    without ``=``, an empty column, a parameter that is not an identifier, or a
    parameter mapped twice.
    """
    mapping: dict[str, str] = {}
    for spec in specs:
        param, sep, column = spec.partition("=")
        param = param.strip()
        if not sep or not column:
            raise ValueError(f"--map expects PARAM=COLUMN, got '{spec}'")
        if not param.isidentifier():
            raise ValueError(f"--map {spec}: '{param}' is not a parameter name")
        if param in mapping:
            raise ValueError(f"--map maps parameter '{param}' twice")
        mapping[param] = column
    return mapping


def _column_list(columns: Iterable[str], limit: int = 20) -> str:
    names = list(columns)
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names) - limit} more)"
    return shown or "none"


def map_columns(row: Mapping[str, Any], mapping: Mapping[str, str], *,
                path: str | os.PathLike[str] | None = None,
                line: int | None = None) -> Row:
    """The row with ``mapping`` (``{param: column}``, the ``--map`` options) applied:
    each parameter takes its column's value; a mapped column does not keep its old
    name; other columns stay as they are (a mapped parameter replaces a column of
    the same name).

    Raises :class:`DatasetError` at ``path:line`` for a column the row does not have,
    naming the available columns and the closest match.
    """
    if not mapping:
        return dict(row)
    for param, column in mapping.items():
        if column not in row:
            close = difflib.get_close_matches(column, [str(k) for k in row], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise DatasetError(
                f"no column '{column}' (for --map {param}={column}){hint} "
                f"(columns: {_column_list(row)})",
                path=None if path is None else os.fspath(path), line=line)
    sources = set(mapping.values())
    out = {k: v for k, v in row.items() if k not in sources}
    for param, column in mapping.items():
        out[param] = row[column]
    return out
