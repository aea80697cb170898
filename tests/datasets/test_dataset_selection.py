"""Row selection: --limit, --sample/--seed (reservoir sampling over line numbers)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from promptflow_dsl.datasets import Selection, sample_lines, select


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "d.jsonl"
    lines = []
    for i in range(1, 41):
        lines.append(json.dumps({"i": i}))
        if i % 10 == 0:
            lines.append("")  # blank lines do not count as rows
    path.write_text("\n".join(lines) + "\n")
    return path


def row_lines(path: Path) -> list[int]:
    return [n for n, text in enumerate(path.read_text().splitlines(), 1) if text.strip()]


def test_all_rows(data: Path) -> None:
    sel = select(data, Selection())
    assert sel.total == 40
    assert list(sel.lines()) == row_lines(data)
    assert all(line in sel for line in row_lines(data))


def test_limit_takes_the_first_rows(data: Path) -> None:
    sel = select(data, Selection(limit=15))
    expected = row_lines(data)[:15]
    assert sel.total == 15 and list(sel.lines()) == expected
    assert expected[-1] in sel and row_lines(data)[15] not in sel
    assert sel.last == expected[-1]
    assert select(data, Selection(limit=0)).total == 0
    assert select(data, Selection(limit=1000)).total == 40


def test_sample_is_reproducible_and_sorted(data: Path) -> None:
    a = sample_lines(data, 7, seed=3)
    assert a == sample_lines(data, 7, seed=3)
    assert a == sorted(a) and len(set(a)) == 7 and set(a) <= set(row_lines(data))
    assert any(sample_lines(data, 7, seed=s) != a for s in range(4, 10))
    sel = select(data, Selection(sample=7, seed=3))
    assert sel.total == 7 and list(sel.lines()) == a and all(x in sel for x in a)
    assert sel.last == a[-1]


def test_sample_larger_than_the_dataset_is_everything(data: Path) -> None:
    assert sample_lines(data, 100, seed=1) == row_lines(data)
    assert sample_lines(data, 0, seed=1) == []


def test_sample_is_uniform(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(10)))
    counts: Counter[int] = Counter()
    for seed in range(3000):
        counts.update(sample_lines(path, 3, seed))
    # each of 10 rows is expected 900 times; allow about 5 standard deviations
    assert set(counts) == set(range(1, 11))
    assert all(760 < c < 1040 for c in counts.values()), counts


def test_sample_counts_bad_rows_without_parsing_them(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    assert sample_lines(path, 5, seed=0) == [1, 2, 3]


def test_selection_validation_and_json() -> None:
    with pytest.raises(ValueError, match="together"):
        Selection(limit=1, sample=2)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            Selection(limit=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Selection(sample=bad)  # type: ignore[arg-type]
    for sel, text in [(Selection(), "all rows"), (Selection(limit=5), "the first 5 rows"),
                      (Selection(sample=9, seed=2), "9 rows sampled with seed 2")]:
        assert sel.describe() == text
        assert Selection.from_json(json.loads(json.dumps(sel.to_json()))) == sel
    assert Selection.from_json(None) == Selection()
