"""Metric statistics: means with bootstrap confidence intervals, paired comparisons of
two runs, and thresholds.

A metric value is ``bool``, ``int``, ``float`` or ``None`` (not scored). A metric
whose scored values are all booleans is a *rate* (the share of ``True``); otherwise
it is a *mean* (booleans count as 1 and 0).

**Confidence intervals** are percentile bootstrap intervals of the mean: ``resamples``
(2,000) resamples of the scored values with replacement, drawn from
``numpy.random.default_rng(seed)``, and the 2.5th and 97.5th percentiles of their
means (for 95 %). Resampling n values with replacement is drawn exactly but without
materialising every resample where possible: two distinct values (a rate) need one
binomial draw per resample, up to 64 distinct values one multinomial draw; other
data is resampled by index in chunks of bounded size. No interval exists for fewer
than two scored values; equal values give a zero-width interval.

**Comparisons** pair rows by row number: for each metric, the rows scored in both
runs, the mean of ``b - a`` over them with its bootstrap interval, and the rows
(recorded ``ok`` in both) whose value differs, being scored in one run only included.
"""

from __future__ import annotations

import difflib
import math
import operator
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ThresholdError
from .runfolder import RESULTS, ResultsTable, load_results_table

__all__ = [
    "Change", "MetricDiff", "MetricSummary", "Threshold", "ThresholdResult",
    "bootstrap_mean_ci", "check_thresholds", "compare_runs", "compare_tables",
    "metric_summary", "paired_difference", "parse_threshold", "summarize_table",
]

RESAMPLES = 2000
CONFIDENCE = 0.95
_CHUNK_ELEMENTS = 1 << 20  # bound on the indices drawn at once (about 4 MB)

MetricValue = bool | int | float | None


def _as_array(values: Iterable[MetricValue] | np.ndarray) -> tuple[np.ndarray, bool]:
    """Float values (``nan`` = not scored) and whether every scored value is a bool."""
    if isinstance(values, np.ndarray):
        arr = np.asarray(values, dtype=np.float64)
        return arr, values.dtype == np.bool_
    out = []
    binary = True
    for v in values:
        if v is None:
            out.append(math.nan)
        elif isinstance(v, bool | np.bool_):
            out.append(1.0 if v else 0.0)
        elif isinstance(v, int | float | np.integer | np.floating):
            out.append(float(v))
            binary = False
        else:
            raise TypeError(f"a metric value is a bool, int, float or None, not {type(v).__name__}")
    return np.asarray(out, dtype=np.float64), binary


def _resampled_means(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    values, counts = np.unique(x, return_counts=True)
    if len(values) == 2:
        k = rng.binomial(n, counts[1] / n, size=resamples)
        return values[0] + (values[1] - values[0]) * (k / n)
    if len(values) <= 64:
        draws = rng.multinomial(n, counts / n, size=resamples)
        return (draws @ values) / n
    out = np.empty(resamples, dtype=np.float64)
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    index_type = np.int32 if n < 2**31 else np.int64
    done = 0
    while done < resamples:
        b = min(per_chunk, resamples - done)
        idx = rng.integers(0, n, size=(b, n), dtype=index_type)
        out[done:done + b] = x[idx].mean(axis=1)
        done += b
    return out


def bootstrap_mean_ci(values: Iterable[MetricValue] | np.ndarray, *,
                      resamples: int = RESAMPLES, seed: int = 0,
                      confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean of the scored values
    (``None``/``nan`` are left out); ``None`` for fewer than two; ``(v, v)`` when all
    equal ``v``. The same values and seed always give the same interval.

    Raises ``ValueError`` for ``resamples < 1`` or a confidence outside (0, 1), and
    ``TypeError`` for a value that is not a number, bool or None.
    """
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    arr, _ = _as_array(values)
    x = arr[~np.isnan(arr)]
    if len(x) < 2:
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    means = _resampled_means(x, resamples, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    lo, hi = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


@dataclass(frozen=True)
class MetricSummary:
    """One metric over a run: its kind (``rate`` or ``mean``), the mean over the
    scored rows (``None`` when none), how many were scored, and the interval."""

    name: str
    kind: str
    mean: float | None
    scored: int
    ci: tuple[float, float] | None

    def to_json(self) -> dict[str, Any]:
        """As stored in ``summary.json``. Never raises."""
        return {"kind": self.kind, "mean": self.mean, "scored": self.scored,
                "ci": list(self.ci) if self.ci is not None else None}


def metric_summary(name: str, values: Iterable[MetricValue] | np.ndarray, *,
                   binary: bool | None = None, resamples: int = RESAMPLES, seed: int = 0,
                   confidence: float = CONFIDENCE) -> MetricSummary:
    """Summarize one metric's values (``None``/``nan`` = not scored). ``binary``
    overrides whether it is a rate (by default: every scored value is a bool).

    Raises ``ValueError``/``TypeError`` like :func:`bootstrap_mean_ci`.
    """
    arr, all_bool = _as_array(values)
    x = arr[~np.isnan(arr)]
    is_rate = all_bool if binary is None else binary
    mean = float(x.mean()) if len(x) else None
    ci = bootstrap_mean_ci(x, resamples=resamples, seed=seed, confidence=confidence)
    return MetricSummary(name, "rate" if is_rate else "mean", mean, len(x), ci)


def summarize_table(table: ResultsTable, names: Sequence[str] = (), *,
                    resamples: int = RESAMPLES, seed: int = 0,
                    confidence: float = CONFIDENCE) -> dict[str, MetricSummary]:
    """Every metric of a results table, ``names`` first (in their order, also when no
    row scored them), then the others in order of appearance.

    Raises ``ValueError`` like :func:`bootstrap_mean_ci`.
    """
    order = list(dict.fromkeys([*names, *table.metrics]))
    out = {}
    for name in order:
        column = table.metrics.get(name)
        arr = np.frombuffer(column, dtype=np.float64) if column is not None else np.empty(0)
        out[name] = metric_summary(name, arr, binary=table.binary.get(name, False),
                                   resamples=resamples, seed=seed, confidence=confidence)
    return out


# ---------------------------------------------------------------------- comparison

@dataclass(frozen=True)
class Change:
    """A row whose metric value differs between run a and run b (``nan``/None: not
    scored)."""

    row: int
    a: float | None
    b: float | None


@dataclass(frozen=True)
class MetricDiff:
    """Run b minus run a for one metric, over the rows scored in both."""

    name: str
    kind: str
    paired: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    ci: tuple[float, float] | None
    changed: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As JSON data; ``changed`` as ``[row, a, b]`` triples. Never raises."""
        return {"kind": self.kind, "paired": self.paired, "mean_a": self.mean_a,
                "mean_b": self.mean_b, "diff": self.diff,
                "ci": list(self.ci) if self.ci is not None else None,
                "changed": [[c.row, c.a, c.b] for c in self.changed]}


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def paired_difference(name: str, rows_a: np.ndarray, values_a: np.ndarray,
                      rows_b: np.ndarray, values_b: np.ndarray, *, binary: bool = False,
                      resamples: int = RESAMPLES, seed: int = 0,
                      confidence: float = CONFIDENCE) -> MetricDiff:
    """Compare one metric of two runs given as row numbers (unique) and aligned values
    (``nan`` = not scored).

    Raises ``ValueError`` when a row array and its values differ in length, or like
    :func:`bootstrap_mean_ci`.
    """
    ra, va = np.asarray(rows_a, dtype=np.int64), np.asarray(values_a, dtype=np.float64)
    rb, vb = np.asarray(rows_b, dtype=np.int64), np.asarray(values_b, dtype=np.float64)
    if len(ra) != len(va) or len(rb) != len(vb):
        raise ValueError("rows and values differ in length")
    common, ia, ib = np.intersect1d(ra, rb, assume_unique=True, return_indices=True)
    a, b = va[ia], vb[ib]
    both = ~np.isnan(a) & ~np.isnan(b)
    d = b[both] - a[both]
    differs = np.where(both, a != b, np.isnan(a) != np.isnan(b))
    changed = [Change(int(r), _opt(x), _opt(y))
               for r, x, y in zip(common[differs], a[differs], b[differs], strict=True)]
    return MetricDiff(
        name=name, kind="rate" if binary else "mean", paired=int(both.sum()),
        mean_a=float(a[both].mean()) if both.any() else None,
        mean_b=float(b[both].mean()) if both.any() else None,
        diff=float(d.mean()) if len(d) else None,
        ci=bootstrap_mean_ci(d, resamples=resamples, seed=seed, confidence=confidence),
        changed=changed)


def compare_tables(a: ResultsTable, b: ResultsTable, names: Sequence[str] | None = None, *,
                   resamples: int = RESAMPLES, seed: int = 0,
                   confidence: float = CONFIDENCE) -> list[MetricDiff]:
    """Per metric (``names``, or those of both runs), run b minus run a.

    Raises ``ValueError`` like :func:`bootstrap_mean_ci`.
    """
    if names is None:
        names = [n for n in b.metrics if n in a.metrics]
    ra = np.frombuffer(a.rows, dtype=np.int64)
    rb = np.frombuffer(b.rows, dtype=np.int64)
    out = []
    for name in names:
        va = (np.frombuffer(a.metrics[name], dtype=np.float64) if name in a.metrics
              else np.full(len(ra), np.nan))
        vb = (np.frombuffer(b.metrics[name], dtype=np.float64) if name in b.metrics
              else np.full(len(rb), np.nan))
        binary = a.binary.get(name, True) and b.binary.get(name, True)
        out.append(paired_difference(name, ra, va, rb, vb, binary=binary,
                                     resamples=resamples, seed=seed, confidence=confidence))
    return out


def _results_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / RESULTS if p.is_dir() else p


def compare_runs(a: str | os.PathLike[str], b: str | os.PathLike[str],
                 names: Sequence[str] | None = None, *, resamples: int = RESAMPLES,
                 seed: int = 0, confidence: float = CONFIDENCE) -> list[MetricDiff]:
    """Compare two runs given as run folders or results files (b minus a).

    Raises :class:`~promptflow_dsl.datasets.errors.RunFolderError` when a results file
    cannot be read, and ``ValueError`` like :func:`bootstrap_mean_ci`.
    """
    return compare_tables(load_results_table(_results_file(a)),
                          load_results_table(_results_file(b)), names,
                          resamples=resamples, seed=seed, confidence=confidence)


# ---------------------------------------------------------------------- thresholds

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": lambda x, y: math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12),
}
_THRESHOLD = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*"
    r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*")


@dataclass(frozen=True)
class Threshold:
    """``metric op value``; ``op`` is one of ``>=``, ``>``, ``<=``, ``<``, ``==``
    (``==`` compares with a relative tolerance of 1e-9).

    Raises :class:`ThresholdError` for another operator.
    """

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ThresholdError(f"unknown threshold operator '{self.op}' "
                                 f"(use one of: {', '.join(_OPS)})")

    @property
    def text(self) -> str:
        """``metric op value``. Never raises."""
        return f"{self.metric} {self.op} {self.value:g}"

    def holds(self, mean: float) -> bool:
        """Whether ``mean op value`` is true (never raises)."""
        return _OPS[self.op](mean, self.value)


def parse_threshold(text: str) -> Threshold:
    """``"label_ok >= 0.8"`` → :class:`Threshold`.

    Raises :class:`ThresholdError` when the text is not ``METRIC OP NUMBER``.
    """
    m = _THRESHOLD.fullmatch(text)
    if not m:
        raise ThresholdError(f"a threshold is METRIC OP NUMBER, like 'label_ok >= 0.8' "
                             f"(operators: {', '.join(_OPS)}); got '{text}'")
    return Threshold(m.group(1), m.group(2), float(m.group(3)))


@dataclass(frozen=True)
class ThresholdResult:
    """A threshold checked against a summary: the metric's mean (``None`` when no row
    was scored, which fails) and whether it passed."""

    threshold: Threshold
    actual: float | None
    passed: bool

    def to_json(self) -> dict[str, Any]:
        """As stored in ``summary.json``. Never raises."""
        return {"threshold": self.threshold.text, "actual": self.actual, "passed": self.passed}

    def describe(self) -> str:
        """``label_ok >= 0.8: 0.83 (passed)`` or ``...: no rows scored (failed)``. Never raises."""
        got = "no rows scored" if self.actual is None else f"{self.actual:.4g}"
        return f"{self.threshold.text}: {got} ({'passed' if self.passed else 'failed'})"


def check_thresholds(thresholds: Iterable[Threshold | str],
                     summary: Mapping[str, Any]) -> list[ThresholdResult]:
    """Check each threshold against ``summary["metrics"][metric]["mean"]`` (a run's
    summary, or a mapping of metric name → :class:`MetricSummary`/its JSON).

    Raises :class:`ThresholdError` for a malformed threshold or a metric the summary
    does not have (with the closest name).
    """
    metrics = summary.get("metrics", summary)
    out = []
    for item in thresholds:
        t = parse_threshold(item) if isinstance(item, str) else item
        if t.metric not in metrics:
            close = difflib.get_close_matches(t.metric, list(metrics), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ThresholdError(f"threshold '{t.text}': no metric '{t.metric}'{hint} "
                                 f"(metrics: {', '.join(metrics) or 'none'})")
        entry = metrics[t.metric]
        mean = entry.mean if isinstance(entry, MetricSummary) else entry.get("mean")
        out.append(ThresholdResult(t, mean, mean is not None and t.holds(mean)))
    return out
