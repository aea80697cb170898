"""The rows an estimate covers, and their values as a handler or an eval takes them.

Rows are read with the dataset engine's reader (JSONL or CSV) and chosen as a run
chooses them (``--limit N``, ``--sample N --seed S``). Above ``max_rows`` selected rows,
a seeded sample of ``max_rows`` of them is estimated and the totals are scaled to all.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..check.program import HandlerInfo
from ..lang.types import RecordType


class EstimateError(ValueError):
    """Bad input for an estimate (an unknown name, unreadable data, a row that does not
    bind); the message is located (``path:line: ...``) where it can be."""


@dataclass
class Rows:
    """The rows to estimate: ``lines`` in file order, and how many rows they stand for."""

    path: str
    lines: list[int]
    total: int  # rows selected; more than len(lines) when sampled down to max_rows

    @property
    def scaled(self) -> bool:
        return self.total > len(self.lines)

    def items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line, row)`` for each row to estimate. Raises :class:`EstimateError`."""
        from ..datasets import DatasetError, iter_rows

        wanted = set(self.lines)
        last = self.lines[-1] if self.lines else 0
        try:
            for line, row in iter_rows(self.path, want=wanted.__contains__):
                yield line, row
                if line >= last:
                    return
        except DatasetError as exc:
            raise EstimateError(str(exc)) from None


def select_rows(path: str | os.PathLike[str], *, limit: int | None = None,
                sample: int | None = None, seed: int = 0,
                max_rows: int | None = None) -> Rows:
    """The rows of ``path`` a run with this selection covers (see the module docstring).
    Raises :class:`EstimateError` for a file that cannot be read or a bad selection."""
    from ..datasets import DatasetError, Selection, select

    text = os.fspath(path)
    try:
        chosen = select(text, Selection(limit=limit, sample=sample, seed=seed))
        lines = list(chosen.lines())
    except DatasetError as exc:
        raise EstimateError(str(exc)) from None
    except ValueError as exc:
        raise EstimateError(str(exc)) from None
    except OSError as exc:
        raise EstimateError(f"{text}: cannot read the file: {exc.strerror or exc}") from None
    total = len(lines)
    if max_rows is not None and total > max_rows:
        lines = sorted(random.Random(seed).sample(lines, max_rows))
    return Rows(text, lines, total)


def bind(h: HandlerInfo, name: str, row: Mapping[str, Any], where: str, *,
         text_cells: bool) -> dict[str, Any]:
    """A handler's inputs from a row, bound as a run binds them
    (:func:`~promptflow_dsl.runtime.rows.bind_row`). Raises :class:`EstimateError` at
    ``where``."""
    from ..runtime.errors import InputError
    from ..runtime.rows import bind_row

    try:
        return bind_row(h, name, row, text_cells=text_cells)
    except InputError as exc:
        raise EstimateError(f"{where}: {exc}") from None


def eval_row(row: Mapping[str, Any], t: RecordType, where: str, *, csv: bool) -> dict[str, Any]:
    """An eval's row as its row type takes it (CSV cells converted as a run converts
    them). Raises :class:`EstimateError` at ``where``."""
    from ..lang.row_types import RowTypeError, row_value

    try:
        return row_value(row, t, text_cells=csv)
    except RowTypeError as exc:
        raise EstimateError(f"{where}: the row does not fit {t.show()}: {exc.message}") from None
