"""The error classes of the dataset engine.

* :class:`DatasetError` — a dataset file or one of its rows is wrong; carries the
  file, the line and the column when they are known (defined beside the row readers,
  :mod:`promptflow_dsl.lang.rows`).
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

from ..lang.rows import DatasetError

__all__ = ["DatasetError", "DuplicateRowError", "ResumeError", "RunFolderError", "ThresholdError"]


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
