"""Which rows of a dataset a run covers: all, the first N (``--limit N``) or a seeded
sample of N (``--sample N --seed S``).

A sample is drawn in one pass over the row *line numbers* (rows are not parsed) by
reservoir sampling (Vitter's algorithm R) with ``random.Random(seed)``; only the N
sampled line numbers are kept. The same file and seed always give the same rows, so
a resumed run covers exactly the rows it started with. A second pass then reads
the sampled rows in file order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .rows import iter_row_lines
from .rowset import RowSet

__all__ = ["Selection", "SelectedRows", "sample_lines", "select"]


@dataclass(frozen=True)
class Selection:
    """The rows a run covers. ``limit`` and ``sample`` exclude each other.

    Raises ``ValueError`` for a negative ``limit`` or ``sample``, or both given.
    """

    limit: int | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.sample is not None:
            raise ValueError("--limit and --sample cannot be used together")
        for name in ("limit", "sample"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ValueError(f"--{name} must be a whole number >= 0, got {value!r}")

    def describe(self) -> str:
        """``all rows``, ``the first 100 rows`` or ``100 rows sampled with seed 3``.
        Never raises."""
        if self.limit is not None:
            return f"the first {self.limit} rows"
        if self.sample is not None:
            return f"{self.sample} rows sampled with seed {self.seed}"
        return "all rows"

    def to_json(self) -> dict[str, Any]:
        """The selection as it is stored in ``meta.json``. Never raises."""
        return {"limit": self.limit, "sample": self.sample,
                "seed": self.seed if self.sample is not None else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Selection:
        """The inverse of :meth:`to_json`. Raises ``ValueError`` for bad values."""
        data = data or {}
        return cls(limit=data.get("limit"), sample=data.get("sample"),
                   seed=data.get("seed") or 0)


def sample_lines(path: str | os.PathLike[str], n: int, seed: int) -> list[int]:
    """The line numbers of ``n`` rows drawn uniformly without replacement (all rows
    when there are fewer), sorted; reservoir sampling with ``random.Random(seed)``.

    Raises :class:`~promptflow_dsl.datasets.errors.DatasetError` like
    :func:`~promptflow_dsl.datasets.rows.iter_row_items`, and ``ValueError`` for n < 0.
    """
    if n < 0:
        raise ValueError(f"a sample size is >= 0, got {n}")
    rng = random.Random(seed)
    reservoir: list[int] = []
    for i, line in enumerate(iter_row_lines(path)):
        if i < n:
            reservoir.append(line)
        else:
            j = rng.randrange(i + 1)
            if j < n:
                reservoir[j] = line
    return sorted(reservoir)


@dataclass
class SelectedRows:
    """The outcome of :func:`select`: how many rows, a test for membership, and the
    last selected line (``None``: no bound) after which reading can stop."""

    total: int
    contains: Callable[[int], bool]
    _lines: Callable[[], Iterator[int]]
    last: int | None = None

    def __contains__(self, line: object) -> bool:
        return isinstance(line, int) and self.contains(line)

    def lines(self) -> Iterator[int]:
        """The selected line numbers in file order (reads the file again unless sampled).

        Raises :class:`~promptflow_dsl.datasets.errors.DatasetError` like
        :func:`~promptflow_dsl.datasets.rows.iter_row_items`.
        """
        return self._lines()


def select(path: str | os.PathLike[str], selection: Selection) -> SelectedRows:
    """Resolve ``selection`` against the dataset in one pass over its row lines.

    Raises :class:`~promptflow_dsl.datasets.errors.DatasetError` like
    :func:`~promptflow_dsl.datasets.rows.iter_row_items`.
    """
    if selection.sample is not None:
        picked = sample_lines(path, selection.sample, selection.seed)
        members = RowSet(picked)
        return SelectedRows(len(picked), members.__contains__, lambda: iter(picked),
                            picked[-1] if picked else 0)
    total = 0
    last = 0
    limit = selection.limit
    if limit != 0:
        for line in iter_row_lines(path):
            total += 1
            last = line
            if limit is not None and total >= limit:
                break

    def upto(line: int) -> bool:
        return line <= last

    def lines() -> Iterator[int]:
        for line in iter_row_lines(path):
            if line > last:
                return
            yield line

    return SelectedRows(total, upto, lines, last)
