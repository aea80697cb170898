"""The dataset engine: run something over many dataset rows and record each result
exactly once (``pflow eval``, ``pflow run --data``). See README.md in this folder.

The names of :mod:`.stats` (which imports numpy) load on first use.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    DatasetError,
    DuplicateRowError,
    ResumeError,
    RunFolderError,
    ThresholdError,
)
from .progress import NullProgress, PlainProgress, Progress, RichProgress, make_progress
from .rows import (
    ValidationReport,
    count_rows,
    csv_header,
    dataset_digest,
    dataset_format,
    iter_row_items,
    iter_row_lines,
    iter_rows,
    map_columns,
    parse_mapping,
    validate_rows,
)
from .rowset import RowSet
from .runfolder import (
    ResultsState,
    ResultsTable,
    ResultsWriter,
    RunFolder,
    RunInfo,
    check_resume,
    list_runs,
    load_results_table,
    load_run,
    new_run_id,
    open_output,
    read_results,
    scan_results,
)
from .runner import (
    DatasetRun,
    DatasetSpec,
    RowOutcome,
    RunResult,
    resume_command,
    run_dataset,
    run_dataset_to_file,
    run_rows,
)
from .selection import SelectedRows, Selection, sample_lines, select

_STATS = frozenset({
    "Change", "MetricDiff", "MetricSummary", "Threshold", "ThresholdResult",
    "bootstrap_mean_ci", "check_thresholds", "compare_runs", "compare_tables",
    "metric_summary", "paired_difference", "parse_threshold", "summarize_table",
})


def __getattr__(name: str) -> Any:
    """The names of :mod:`.stats`, imported on first use. Raises ``AttributeError``
    for other unknown names."""
    if name in _STATS:
        from . import stats

        return getattr(stats, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DatasetError", "DatasetRun", "DatasetSpec", "DuplicateRowError", "NullProgress",
    "PlainProgress", "Progress", "ResultsState", "ResultsTable", "ResultsWriter",
    "ResumeError", "RichProgress", "RowOutcome", "RowSet", "RunFolder", "RunFolderError",
    "RunInfo", "RunResult", "SelectedRows", "Selection", "ThresholdError",
    "ValidationReport", "check_resume", "count_rows", "csv_header", "dataset_digest",
    "dataset_format", "iter_row_items", "iter_row_lines", "iter_rows", "list_runs",
    "load_results_table", "load_run", "make_progress", "map_columns", "new_run_id",
    "open_output", "parse_mapping", "read_results", "resume_command", "run_dataset",
    "run_dataset_to_file", "run_rows", "sample_lines", "scan_results", "select",
    "validate_rows", *sorted(_STATS),
]
