"""Metric statistics: means, bootstrap intervals, paired comparisons, thresholds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from promptflow_dsl.datasets import ThresholdError
from promptflow_dsl.datasets.stats import (
    Threshold,
    bootstrap_mean_ci,
    check_thresholds,
    compare_runs,
    metric_summary,
    paired_difference,
    parse_threshold,
)


def naive_ci(values: list[float], resamples: int = 4000, seed: int = 99) -> tuple[float, float]:
    """Textbook percentile bootstrap: resample indices, take means."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


# ------------------------------------------------------------------ one metric

def test_rate_of_booleans_with_unscored_rows() -> None:
    m = metric_summary("ok", [True, False, None, True, True])
    assert (m.kind, m.mean, m.scored) == ("rate", 0.75, 4)
    assert m.ci is not None and m.mean is not None and m.ci[0] <= m.mean <= m.ci[1]
    assert m.to_json() == {"kind": "rate", "mean": 0.75, "scored": 4, "ci": list(m.ci)}


def test_mean_of_numbers() -> None:
    m = metric_summary("score", [1, 2.5, None, 4, True])
    assert m.kind == "mean" and m.scored == 4 and m.mean == pytest.approx(8.5 / 4)


@pytest.mark.parametrize(("values", "mean", "ci"), [
    ([], None, None), ([None, None], None, None), ([True], 1.0, None), ([0.25], 0.25, None),
    ([True] * 5, 1.0, (1.0, 1.0)), ([3, 3, None, 3], 3.0, (3.0, 3.0)),
])
def test_degenerate_cases(values: list, mean: float | None, ci: tuple | None) -> None:
    m = metric_summary("m", values)
    assert m.mean == mean and m.ci == ci and m.scored == sum(v is not None for v in values)


def test_intervals_are_seeded() -> None:
    values = list(np.random.default_rng(1).normal(size=200))
    assert bootstrap_mean_ci(values, seed=5) == bootstrap_mean_ci(values, seed=5)
    assert bootstrap_mean_ci(values, seed=5) != bootstrap_mean_ci(values, seed=6)


@pytest.mark.parametrize("kind", ["binary", "few values", "continuous"])
def test_interval_matches_the_textbook_bootstrap(kind: str) -> None:
    rng = np.random.default_rng(7)
    if kind == "binary":
        values = list(rng.random(400) < 0.3)
    elif kind == "few values":
        values = list(rng.integers(1, 6, size=400).astype(float))
    else:
        values = list(rng.exponential(size=400))
    lo, hi = bootstrap_mean_ci(values, resamples=4000)  # type: ignore[misc]
    nlo, nhi = naive_ci([float(v) for v in values])
    width = nhi - nlo
    assert abs(lo - nlo) < 0.08 * width and abs(hi - nhi) < 0.08 * width
    # and the percentile interval is close to the normal approximation here
    x = np.asarray(values, dtype=float)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert abs(width - 2 * 1.96 * se) < 0.1 * width


def test_interval_arguments() -> None:
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1, 2], resamples=0)
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1, 2], confidence=1.0)
    with pytest.raises(TypeError):
        metric_summary("m", ["text"])  # type: ignore[list-item]
    lo90, hi90 = bootstrap_mean_ci([0.0, 1.0, 2.0, 5.0] * 10, confidence=0.9)  # type: ignore[misc]
    lo95, hi95 = bootstrap_mean_ci([0.0, 1.0, 2.0, 5.0] * 10)  # type: ignore[misc]
    assert lo95 <= lo90 < hi90 <= hi95


def test_large_inputs_are_quick() -> None:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    metric_summary("rate", list(rng.random(100_000) < 0.5))
    metric_summary("score", rng.normal(size=100_000))
    assert time.perf_counter() - t0 < 15


# ----------------------------------------------------------------- comparisons

def test_paired_difference_pairs_rows_by_number() -> None:
    nan = float("nan")
    d = paired_difference(
        "acc",
        np.array([1, 2, 3, 4, 5]), np.array([1.0, 0.0, 1.0, nan, 0.0]),
        np.array([5, 4, 3, 2, 9]), np.array([1.0, 1.0, 1.0, 1.0, 0.0]), binary=True)
    # paired and scored in both: rows 2, 3, 5
    assert d.paired == 3 and d.kind == "rate"
    assert d.mean_a == pytest.approx(1 / 3) and d.mean_b == 1.0
    assert d.diff == pytest.approx(2 / 3)
    assert [(c.row, c.a, c.b) for c in d.changed] == [(2, 0.0, 1.0), (4, None, 1.0),
                                                      (5, 0.0, 1.0)]
    assert d.ci is not None and d.diff is not None and d.ci[0] <= d.diff <= d.ci[1]
    assert d.to_json()["changed"] == [[2, 0.0, 1.0], [4, None, 1.0], [5, 0.0, 1.0]]


def test_paired_difference_nothing_in_common() -> None:
    d = paired_difference("m", np.array([1]), np.array([1.0]), np.array([2]), np.array([1.0]))
    assert (d.paired, d.diff, d.ci, d.changed) == (0, None, None, [])
    with pytest.raises(ValueError):
        paired_difference("m", np.array([1, 2]), np.array([1.0]), np.array([]), np.array([]))


def _results(path: Path, rows: dict[int, dict | None]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "results.jsonl", "w") as f:
        for row, metrics in rows.items():
            status = "failed" if metrics is None else "ok"
            f.write(json.dumps({"row": row, "status": status, "metrics": metrics or {}}) + "\n")
    return path


def test_compare_runs(tmp_path: Path) -> None:
    a = _results(tmp_path / "a", {1: {"acc": True, "s": 1}, 2: {"acc": False, "s": 2},
                                  3: {"acc": True, "s": 3}, 4: None})
    b = _results(tmp_path / "b", {3: {"acc": True, "s": 5}, 1: {"acc": True, "s": 1},
                                  2: {"acc": True, "s": None}, 4: {"acc": True, "s": 4}})
    diffs = {d.name: d for d in compare_runs(a, b / "results.jsonl")}
    assert set(diffs) == {"acc", "s"}
    assert diffs["acc"].kind == "rate" and diffs["acc"].paired == 3
    assert diffs["acc"].diff == pytest.approx(1 / 3)
    assert [c.row for c in diffs["acc"].changed] == [2]  # row 4 failed in run a
    assert diffs["s"].kind == "mean" and diffs["s"].paired == 2 and diffs["s"].diff == 1.0
    assert [(c.row, c.a, c.b) for c in diffs["s"].changed] == [(2, 2.0, None), (3, 3.0, 5.0)]
    only = compare_runs(a, b, ["s", "missing"])
    assert [d.name for d in only] == ["s", "missing"] and only[1].paired == 0


# ------------------------------------------------------------------ thresholds

@pytest.mark.parametrize(("text", "parsed"), [
    ("label_ok >= 0.8", Threshold("label_ok", ">=", 0.8)),
    ("x>1", Threshold("x", ">", 1.0)), (" cost <= 2.5e-1 ", Threshold("cost", "<=", 0.25)),
    ("m < -1", Threshold("m", "<", -1.0)), ("m == .5", Threshold("m", "==", 0.5)),
])
def test_parse_threshold(text: str, parsed: Threshold) -> None:
    assert parse_threshold(text) == parsed


@pytest.mark.parametrize("text", ["label_ok", ">= 0.8", "a => 1", "a >= x", "a != 1", "1a > 2"])
def test_bad_thresholds(text: str) -> None:
    with pytest.raises(ThresholdError, match="METRIC OP NUMBER"):
        parse_threshold(text)
    with pytest.raises(ThresholdError, match="operator"):
        Threshold("a", "!=", 1.0)


def test_check_thresholds() -> None:
    summary = {"metrics": {"acc": {"mean": 0.8}, "score": {"mean": 3.0}, "none": {"mean": None}}}
    results = check_thresholds(["acc >= 0.8", "acc > 0.8", "score <= 3", "score < 3",
                                "acc == 0.8000000000001", Threshold("none", ">=", 0)], summary)
    assert [r.passed for r in results] == [True, False, True, False, True, False]
    assert results[0].describe() == "acc >= 0.8: 0.8 (passed)"
    assert results[-1].describe() == "none >= 0: no rows scored (failed)"
    assert results[0].to_json() == {"threshold": "acc >= 0.8", "actual": 0.8, "passed": True}
    with pytest.raises(ThresholdError, match="did you mean 'acc'"):
        check_thresholds(["acs >= 1"], summary)
    ms = {"acc": metric_summary("acc", [True, True])}
    assert check_thresholds(["acc == 1"], ms)[0].passed
