"""Run folders and results files: one line per row, torn tails, winners, locks,
listing, resume checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptflow_dsl.datasets import (
    DuplicateRowError,
    ResultsWriter,
    ResumeError,
    RunFolder,
    RunFolderError,
    Selection,
    check_resume,
    list_runs,
    load_results_table,
    load_run,
    new_run_id,
    open_output,
    read_results,
    scan_results,
)


def raw_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------ writer

def test_writer_appends_one_line_per_row_visible_at_once(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    w = ResultsWriter(path)
    w.append(3, "ok", {"out": "x", "metrics": {"m": True}})
    # visible to another reader before close: nothing is buffered in the process
    assert path.read_bytes() == b'{"row":3,"status":"ok","out":"x","metrics":{"m":true}}\n'
    w.append(1, "failed", {"error": "boom"})
    w.close()
    assert raw_lines(path) == [{"row": 3, "status": "ok", "out": "x", "metrics": {"m": True}},
                               {"row": 1, "status": "failed", "error": "boom"}]
    assert w.written == 2 and 3 in w.ok and 1 in w.failed


def test_writer_uses_a_single_write_per_line(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = os.write

    def spy(fd: int, data: bytes | memoryview) -> int:
        calls.append(bytes(data))
        return real(fd, data)

    with ResultsWriter(tmp_path / "r.jsonl") as w:
        monkeypatch.setattr(os, "write", spy)
        w.append(1, "ok", {"text": "é" * 10_000})
        w.append(2, "ok", {})
    assert len(calls) == 2 and all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in calls)


def test_writer_refuses_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path) as w:
        w.append(1, "ok", {})
        w.append(2, "failed", {})
        with pytest.raises(DuplicateRowError):
            w.append(1, "ok", {})
        with pytest.raises(DuplicateRowError):
            w.append(1, "failed", {})
        with pytest.raises(DuplicateRowError):  # a second line in the same session
            w.append(2, "ok", {})
    with ResultsWriter(path) as w:  # a later session may retry the failed row, once
        assert not w.can_append(1) and w.can_append(2)
        w.append(2, "ok", {"again": True})
        with pytest.raises(DuplicateRowError):
            w.append(2, "ok", {})
    assert [(d["row"], d["status"]) for d in raw_lines(path)] == [
        (1, "ok"), (2, "failed"), (2, "ok")]


def test_writer_rejects_bad_lines_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path) as w:
        cases: list[tuple[int, str, dict[str, Any], type[Exception]]] = [
            (1, "maybe", {}, ValueError), (-1, "ok", {}, ValueError),
            (1, "ok", {"row": 2}, ValueError), (1, "ok", {"status": "x"}, ValueError),
            (1, "ok", {"x": object()}, TypeError), (1, "ok", {"x": float("nan")}, ValueError),
        ]
        for row, status, fields, exc in cases:
            with pytest.raises(exc):
                w.append(row, status, fields)
        assert w.can_append(1)
    assert path.read_bytes() == b""


def test_writer_escapes_lone_surrogates(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path) as w:
        w.append(1, "ok", {"text": "a\ud800b", "other": "é"})
    path.read_bytes().decode("utf-8")  # still valid UTF-8
    assert raw_lines(path)[0]["text"] == "a\ud800b"
    assert scan_results(path).ok.__contains__(1)


def test_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path):
        with pytest.raises(RunFolderError, match="another process"):
            ResultsWriter(path)
    ResultsWriter(path).close()  # free again


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="is a directory"):
        ResultsWriter(tmp_path)
    with pytest.raises(RunFolderError, match="cannot open"):
        ResultsWriter(tmp_path / "missing" / "r.jsonl")
    w = ResultsWriter(tmp_path / "r.jsonl")
    w.close()
    w.close()
    with pytest.raises(RunFolderError, match="closed"):
        w.append(1, "ok", {})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(1, 12), st.sampled_from(["ok", "failed"])),
                         max_size=25), min_size=1, max_size=4))
def test_the_writer_never_records_a_row_twice(tmp_path_factory: pytest.TempPathFactory,
                                              sessions: list[list[tuple[int, str]]]) -> None:
    """Whatever is attempted, over any number of sessions: no line follows an ok line
    of its row, and no session writes two lines for a row."""
    path = tmp_path_factory.mktemp("w") / "r.jsonl"
    for session in sessions:
        with ResultsWriter(path) as w:
            written = set()
            for row, status in session:
                try:
                    w.append(row, status, {})
                except DuplicateRowError:
                    continue
                assert row not in written
                written.add(row)
    seen_ok: set[int] = set()
    for line in raw_lines(path):
        assert line["row"] not in seen_ok
        if line["status"] == "ok":
            seen_ok.add(line["row"])
    state = scan_results(path)
    assert state.duplicates == 0 and set(state.ok) == seen_ok


# ------------------------------------------------------------------ reading back

def test_torn_tail_is_discarded_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    good = b'{"row":1,"status":"ok"}\n{"row":2,"status":"failed","error":"x"}\n'
    for tail in (b'{"row":3,"sta', b'{"row":3,"status":"ok"', b'{"row":3,"status":"ok",}\n',
                 b"\x00" * 300, b'{"row":3,"status":"ok"}\n{"row":4,', b"garbage\n\x00\x00"):
        path.write_bytes(good + tail)
        state = scan_results(path)
        expected_ok = {1, 3} if tail.startswith(b'{"row":3,"status":"ok"}\n') else {1}
        assert set(state.ok) == expected_ok and set(state.failed) == {2}
        assert state.torn and state.unreadable_count == 0
        with ResultsWriter(path) as w:
            assert w.state.valid_end == path.stat().st_size
            w.append(9, "ok", {})
        assert [d["row"] for d in raw_lines(path)] == [1, 2, *sorted(expected_ok - {1}), 9]


def test_torn_last_line_of_the_writers_layout_is_checked_in_full(tmp_path: Path) -> None:
    """The quick check (first and last bytes) is never trusted for the last line."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"row":1,"status":"ok"}\n{"row":2,"status":"ok","x":"a}\n')
    state = scan_results(path)
    assert set(state.ok) == {1} and state.torn


def test_unreadable_middle_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"row":1,"status":"ok"}\nnot json\n[1]\n{"status":"ok"}\n'
                     b'{"row":true,"status":"ok"}\n{"row":2,"status":"weird"}\n'
                     b'{"row":3,"status":"ok"}\n')
    state = scan_results(path)
    assert set(state.ok) == {1, 3} and not state.torn
    assert state.unreadable == [2, 3, 4, 5, 6] and state.unreadable_count == 5
    with ResultsWriter(path) as w:  # nothing is truncated
        assert w.state.size == path.stat().st_size


def test_lines_in_another_key_order_are_read(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"status": "ok", "row": 4}\n{ "row": 5, "status": "failed" }\n')
    state = scan_results(path)
    assert set(state.ok) == {4} and set(state.failed) == {5}


def test_winners_first_ok_else_last_failed(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        {"row": 1, "status": "ok", "v": "first"}, {"row": 1, "status": "ok", "v": "dup"},
        {"row": 1, "status": "failed", "v": "late"},
        {"row": 2, "status": "failed", "v": "a"}, {"row": 2, "status": "ok", "v": "b"},
        {"row": 2, "status": "failed", "v": "c"},
        {"row": 3, "status": "failed", "v": "x"}, {"row": 3, "status": "failed", "v": "y"},
        {"row": 4, "status": "ok", "v": "only"},
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    state = scan_results(path)
    assert set(state.ok) == {1, 2, 4} and set(state.failed) == {3}
    assert state.duplicates == 3 and state.lines == 9
    assert [(d["row"], d["v"]) for d in read_results(path)] == [
        (1, "first"), (2, "b"), (3, "y"), (4, "only")]


def test_missing_results_file_records_nothing(tmp_path: Path) -> None:
    state = scan_results(tmp_path / "none.jsonl")
    assert state.recorded == 0 and not state.torn
    assert list(read_results(tmp_path / "none.jsonl")) == []


def test_results_table(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        {"row": 1, "status": "ok", "metrics": {"acc": True, "score": 2}, "tokens": 10, "cost": 0.5},
        {"row": 2, "status": "failed", "error": "x", "tokens": 3, "cost": 0.25},
        {"row": 2, "status": "ok", "metrics": {"acc": False, "score": None, "new": 1.5},
         "tokens": 4},
        {"row": 3, "status": "ok", "tokens": 1},
        {"row": 1, "status": "ok", "metrics": {"acc": False}, "tokens": 100},  # duplicate
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    t = load_results_table(path)
    nan = float("nan")

    def same(a: list[float], b: list[float]) -> bool:
        return all((x != x and y != y) or x == y for x, y in zip(a, b, strict=True))

    assert list(t.rows) == [1, 2, 3] and (t.ok, t.failed) == (3, 0)
    assert same(list(t.metrics["acc"]), [1.0, 0.0, nan])
    assert same(list(t.metrics["score"]), [2.0, nan, nan])
    assert same(list(t.metrics["new"]), [nan, 1.5, nan])
    assert t.binary == {"acc": True, "score": False, "new": False}
    assert t.tokens == 18 and t.cost == 0.75


# ------------------------------------------------------------------- run folders

def test_run_ids_sort_by_time() -> None:
    import datetime as dt

    a = new_run_id(dt.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC))
    assert a.startswith("20250102T030405.678Z-") and len(a) == 27
    b = new_run_id(dt.datetime(2025, 1, 2, 3, 4, 6, tzinfo=dt.UTC))
    assert sorted([b, a]) == [a, b]


def test_create_and_list_runs(tmp_path: Path) -> None:
    root = tmp_path / "evals"
    assert list_runs(root) == []
    a = RunFolder.create(root, {"program_digest": "p"}, run_id="20250101T000000.000Z-aaaaaa")
    b = RunFolder.create(root, {"program_digest": "q"}, run_id="20250102T000000.000Z-bbbbbb")
    b.write_summary({"status": "complete", "rows": {"ok": 3}})
    (root / ".20250103T000000.000Z-cccccc.x.tmp").mkdir()  # a folder being created
    (root / "stray").mkdir()  # no meta.json
    assert a.results_path.read_bytes() == b""
    assert a.read_meta() == {"format": "pflow-run/1", "run_id": a.run_id, "program_digest": "p"}
    runs = list_runs(root)
    assert [r.run_id for r in runs] == [b.run_id, a.run_id]
    assert runs[0].summary == {"status": "complete", "rows": {"ok": 3}} and runs[1].summary is None
    assert runs[1].meta is not None and runs[1].meta["program_digest"] == "p"
    assert runs[0].folder.path == b.path
    assert not any(p.name.endswith(".tmp") for p in root.iterdir() if p.is_file())


def test_load_run(tmp_path: Path) -> None:
    root = tmp_path / "evals"
    with pytest.raises(RunFolderError, match="no runs"):
        load_run(root, "last")
    a = RunFolder.create(root, {}, run_id="20250101T000000.000Z-aaaaaa")
    b = RunFolder.create(root, {}, run_id="20250101T000001.000Z-bbbbbb")
    assert load_run(root, "last").path == b.path
    assert load_run(root, a.run_id).path == a.path
    assert load_run(root, "20250101T000001").path == b.path
    with pytest.raises(RunFolderError, match="matches 2 runs"):
        load_run(root, "2025")
    with pytest.raises(RunFolderError, match="no run 'zzz'"):
        load_run(root, "zzz")


def test_summary_and_meta_files(tmp_path: Path) -> None:
    f = RunFolder.create(tmp_path, {"x": 1})
    assert f.read_summary() is None
    f.write_summary({"status": "interrupted"})
    assert f.read_summary() == {"status": "interrupted"}
    f.summary_path.write_text("{broken")
    with pytest.raises(RunFolderError, match="cannot read"):
        f.read_summary()
    f.meta_path.unlink()
    with pytest.raises(RunFolderError, match="no such file"):
        f.read_meta()


# ----------------------------------------------------------------- plain outputs

def test_open_output(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.jsonl"
    with open_output(out) as w:  # creates the folder
        w.append(1, "ok", {})
    with pytest.raises(RunFolderError,
                       match="exists; --resume continues it, --force overwrites it"):
        open_output(out)
    with open_output(out, resume=True) as w:
        assert 1 in w.ok
        w.append(2, "ok", {})
    assert len(raw_lines(out)) == 2
    with open_output(out, force=True) as w:
        assert w.state.recorded == 0
    assert out.read_bytes() == b""
    with pytest.raises(RunFolderError, match="is a directory"):
        open_output(tmp_path)


# -------------------------------------------------------------------- resuming

def test_check_resume() -> None:
    meta = {"run_id": "R1", "program_digest": "sha256:aaaaaaaaaaaaaaaa",
            "dataset": {"path": "d.jsonl", "digest": "sha256:bbbbbbbbbbbbbbbbbb"},
            "selection": Selection(limit=5).to_json()}
    same: dict[str, Any] = {"program_digest": "sha256:aaaaaaaaaaaaaaaa",
                            "dataset_digest": "sha256:bbbbbbbbbbbbbbbbbb",
                            "selection": Selection(limit=5)}
    assert check_resume(meta, **same) == []
    with pytest.raises(ResumeError) as info:
        check_resume(meta, **{**same, "program_digest": "sha256:cccccccccccccccc"})
    assert info.value.changes == [
        "the program changed (sha256:aaaaaaaaaaaa → sha256:cccccccccccc)"]
    assert str(info.value).startswith("run R1 cannot be resumed: the program changed")
    assert "--force" in str(info.value)
    with pytest.raises(ResumeError) as info:
        check_resume(meta, **{**same, "dataset_digest": "sha256:dd", "selection": Selection()})
    assert info.value.changes == [
        "the dataset d.jsonl changed (sha256:bbbbbbbbbbbb → sha256:dd)",
        "the rows changed (the first 5 rows → all rows)"]
    changes = check_resume(meta, **{**same, "program_digest": "x"}, force=True)
    assert len(changes) == 1


def test_durable_writer_syncs_each_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    with ResultsWriter(tmp_path / "a.jsonl") as w:
        w.append(1, "ok", {})
        w.append(2, "ok", {})
    assert synced == []
    with ResultsWriter(tmp_path / "b.jsonl", durable=True) as w:
        w.append(1, "ok", {})
        w.append(2, "ok", {})
    assert len(synced) == 3  # one per line, one at close
