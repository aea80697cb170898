"""The error classes of the dataset engine.

* :class:`DatasetError` — a dataset file or one of its rows is wrong; carries the
  file, the line and the column when they are known.
* :class:`RunFolderError` — a run folder or a results file cannot be used (no such
  run, an output file that exists, a run another process is writing).
* :class:`ResumeError` — a run cannot be resumed because its program or dataset
  changed; :attr:`ResumeError.changes` says what.
* :class:`DuplicateRowError` — something tried to record a row twice (a bug of the
  caller, never a user error).
* :class:`ThresholdError` — a threshold is malformed or names an unknown metric.
"""

from __future__ import annotations

from collections.abc import Sequence


class DatasetError(ValueError):
    """A dataset problem at ``path:line:column``.

    ``line`` and ``column`` are 1-based and ``None`` when unknown; ``str(error)``
    is ``path:line:column: message`` with the unknown parts left out.
    """

    def __init__(self, message: str, *, path: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        """Never raises."""
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        super().__init__(self.__str__())

    @property
    def location(self) -> str:
        """``path:line:column`` with the unknown parts left out (may be empty). Never raises."""
        parts = [self.path] if self.path else []
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        loc = self.location
        return f"{loc}: {self.message}" if loc else self.message

    def __reduce__(self):  # keeps keyword arguments through pickling
        return (_rebuild_dataset_error, (self.message, self.path, self.line, self.column))


def _rebuild_dataset_error(message: str, path: str | None, line: int | None,
                           column: int | None) -> DatasetError:
    return DatasetError(message, path=path, line=line, column=column)


class RunFolderError(Exception):
    """A run folder or results file cannot be created, found, read or written."""


class ResumeError(RunFolderError):
    """A run cannot be resumed: what it was started with changed.

    ``changes`` holds one sentence per change (the program, the dataset, the row
    selection).
    """

    def __init__(self, run_id: str, changes: Sequence[str]) -> None:
        """Never raises."""
        self.run_id = run_id
        self.changes = list(changes)
        super().__init__(f"run {run_id} cannot be resumed: " + "; ".join(self.changes)
                         + " (--force resumes it anyway)")


class DuplicateRowError(RuntimeError):
    """A row was about to be recorded a second time (a bug in the caller)."""


class ThresholdError(ValueError):
    """A threshold is not ``METRIC OP NUMBER`` or names a metric that does not exist."""
