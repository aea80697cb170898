"""Row sources: JSONL and CSV streamed with line numbers, located errors, validation,
column mapping, digests."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from promptflow_dsl.datasets import (
    DatasetError,
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


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def error_of(path: Path) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        list(iter_rows(path))
    return info.value


# ------------------------------------------------------------------------ formats

@pytest.mark.parametrize(("name", "fmt"), [("a.jsonl", "jsonl"), ("a.ndjson", "jsonl"),
                                           ("A.JSONL", "jsonl"), ("a.csv", "csv"),
                                           ("dir.v2/a.CSV", "csv")])
def test_format_by_extension(name: str, fmt: str) -> None:
    assert dataset_format(name) == fmt


@pytest.mark.parametrize(("name", "what"), [("a.json", "'.json'"), ("a.tsv", "'.tsv'"),
                                            ("data", "no extension")])
def test_unknown_extension_is_a_clear_error(tmp_path: Path, name: str, what: str) -> None:
    path = write(tmp_path / name, '{"a": 1}\n')
    err = error_of(path)
    assert err.path == str(path) and err.line is None
    assert what in err.message and ".jsonl, .ndjson or .csv" in err.message


# -------------------------------------------------------------------------- JSONL

def test_jsonl_rows_with_line_numbers_blank_lines_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n\n   \n{"a": 2}\r\n{"a": "é"}')
    assert list(iter_rows(path)) == [(1, {"a": 1}), (4, {"a": 2}), (5, {"a": "é"})]


def test_jsonl_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", b'\xef\xbb\xbf{"a": 1}\n')
    assert list(iter_rows(path)) == [(1, {"a": 1})]


def test_bad_json_line_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n{"a": 2,, }\n')
    err = error_of(path)
    assert (err.path, err.line, err.column) == (str(path), 2, 9)
    assert err.message.startswith("not valid JSON: ")
    assert str(err) == f"{path}:2:9: {err.message}"


@pytest.mark.parametrize(("line", "kind"), [("[1, 2]", "an array"), ('"text"', "a string"),
                                            ("3", "a number"), ("null", "null"),
                                            ("  true", "a boolean")])
def test_a_line_must_be_an_object(tmp_path: Path, line: str, kind: str) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n' + line + "\n")
    err = error_of(path)
    assert err.line == 2
    assert err.message == f"each line must be a JSON object, not {kind}"
    assert err.column == len(line) - len(line.lstrip()) + 1


def test_nan_and_infinity_are_not_json(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": NaN}\n')
    err = error_of(path)
    assert err.line == 1 and "NaN is not a JSON number" in err.message


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    err = error_of(path)
    assert err.line == 1 and "nested too deeply" in err.message


def test_bad_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", b'{"a": 1}\n{"a": "x\xffy"}\n')
    err = error_of(path)
    assert (err.line, err.column) == (2, 9)
    assert err.message == "not valid UTF-8 (byte 0xff)"


def test_items_keep_going_after_bad_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", b'{"a": 1}\nnope\n[1]\n{"a": "\xfe"}\n{"a": 5}\n')
    items = list(iter_row_items(path))
    assert [line for line, _ in items] == [1, 2, 3, 4, 5]
    assert items[0][1] == {"a": 1} and items[4][1] == {"a": 5}
    assert all(isinstance(row, DatasetError) for _, row in items[1:4])


def test_want_skips_rows_without_parsing(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\nnot json at all\n{"a": 3}\n')
    asked: list[int] = []

    def want(line: int) -> bool:
        asked.append(line)
        return line != 2

    assert list(iter_rows(path, want=want)) == [(1, {"a": 1}), (3, {"a": 3})]
    assert asked == [1, 2, 3]
    assert [row for _, row in iter_row_items(path, want=lambda n: False)] == [None] * 3


def test_row_lines_and_count_include_bad_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n\nbroken\n{"a": 3}\n')
    assert list(iter_row_lines(path)) == [1, 3, 4]
    assert count_rows(path) == 3


def test_empty_file_has_no_rows(tmp_path: Path) -> None:
    for name in ("e.jsonl", "e.csv"):
        path = write(tmp_path / name, "")
        assert list(iter_rows(path)) == []


def test_rows_are_streamed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "x" * 1000}) + "\n"
    with open(path, "w") as f:
        for _ in range(20_000):  # about 20 MB
            f.write(line)
    tracemalloc.start()
    try:
        rows = iter_rows(path)
        next(rows)
        next(rows)
        _, peak = tracemalloc.get_traced_memory()
        rows.close()  # type: ignore[attr-defined]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


# ---------------------------------------------------------------------------- CSV

def test_csv_header_names_columns_values_are_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,text,gold\n1,hello,positive\n2,,negative\n")
    assert list(iter_rows(path)) == [
        (2, {"id": "1", "text": "hello", "gold": "positive"}),
        (3, {"id": "2", "text": "", "gold": "negative"})]
    assert csv_header(path) == ["id", "text", "gold"]


def test_csv_line_number_is_where_a_multiline_record_starts(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv",
                 'id,text\n1,"two\nlines"\n\n2,"three\n\nlines"\n3,plain\r\n')
    assert list(iter_rows(path)) == [(2, {"id": "1", "text": "two\nlines"}),
                                     (5, {"id": "2", "text": "three\n\nlines"}),
                                     (8, {"id": "3", "text": "plain"})]
    assert list(iter_row_lines(path)) == [2, 5, 8]


def test_csv_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", b"\xef\xbb\xbfid,text\r\n1,a\r\n")
    assert list(iter_rows(path)) == [(2, {"id": "1", "text": "a"})]


def test_csv_wrong_number_of_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'id,text\n1,"a\nb"\n2,b,extra\n3\n4,d\n')
    items = list(iter_row_items(path))
    assert [line for line, _ in items] == [2, 4, 5, 6]
    bad = items[1][1]
    assert isinstance(bad, DatasetError)
    assert (bad.line, bad.message) == (4, "has 3 fields; the header (line 1) has 2 columns")
    assert isinstance(items[2][1], DatasetError) and "has 1 field;" in items[2][1].message
    assert items[3][1] == {"id": "4", "text": "d"}


def test_csv_bad_quoting_is_located_and_reading_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'id,text\n1,"a"b\n2,ok\n')
    items = list(iter_row_items(path))
    assert isinstance(items[0][1], DatasetError) and items[0][1].line == 2
    assert "quote" in items[0][1].message
    assert items[1] == (3, {"id": "2", "text": "ok"})


def test_csv_unterminated_quote(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'id,text\n1,ok\n2,"never closed\n3,x\n')
    err = error_of(path)
    assert err.line == 3
    assert err.message == "a quoted field is not closed before the end of the file"


def test_csv_bad_utf8_names_the_physical_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", b'id,text\n1,"multi\nli\xffne"\n2,ok\n')
    items = list(iter_row_items(path))
    bad = items[0][1]
    assert items[0][0] == 2 and isinstance(bad, DatasetError)
    assert (bad.line, bad.column, bad.message) == (3, 3, "not valid UTF-8 (byte 0xff)")
    assert items[1] == (4, {"id": "2", "text": "ok"})


@pytest.mark.parametrize(("header", "message"), [
    ("id,text,id", "column 'id' appears twice in the header"),
    ("id,,text", "column 2 of the header has no name"),
])
def test_csv_bad_header_raises(tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path / "d.csv", f"\n{header}\n1,2,3\n")
    for items in (lambda: list(iter_row_items(path)), lambda: count_rows(path)):
        with pytest.raises(DatasetError) as info:
            items()
        assert (info.value.line, info.value.message) == (2, message)


def test_csv_long_fields(tmp_path: Path) -> None:
    text = "y" * 300_000  # over the csv module's default field limit
    path = write(tmp_path / "d.csv", f'id,text\n1,"{text}"\n')
    assert list(iter_rows(path)) == [(2, {"id": "1", "text": text})]


# -------------------------------------------------------------------- file errors

def test_missing_file(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.jsonl")
    assert err.message == "no such file" and err.line is None


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").mkdir()
    assert "is a directory" in error_of(tmp_path / "d.jsonl").message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "d.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            list(iter_rows(fifo))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "w"):
            pass
        pytest.fail("opening a FIFO blocked")
    assert isinstance(outcome[0], DatasetError)
    assert outcome[0].message == "is a FIFO, not a regular file"
    with pytest.raises(DatasetError, match="FIFO"):
        dataset_digest(fifo)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n')
    path.chmod(0)
    try:
        assert "permission denied" in error_of(path).message
    finally:
        path.chmod(0o644)


# --------------------------------------------------------------------- validation

def test_validate_rows_collects_located_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl",
                 '{"gold": "positive"}\n{"gold": "meh"}\nbroken\n\n{"gold": 3}\n')

    def check(row: dict) -> str | None:
        return None if row.get("gold") in ("positive", "negative") else "gold is not a label"

    report = validate_rows(path, check)
    assert report.rows == 4 and not report.ok and report.error_count == 3
    assert [(e.line, e.message) for e in report.errors] == [
        (2, "gold is not a label"), (3, report.errors[1].message), (5, "gold is not a label")]
    assert report.errors[1].message.startswith("not valid JSON")
    assert report.messages()[0] == f"{path}:2: gold is not a label"


def test_validate_rows_caps_reported_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n' * 57)
    report = validate_rows(path, lambda row: "bad")
    assert report.error_count == 57 and len(report.errors) == 20
    assert report.messages()[-1] == f"{path}: ... and 37 more errors"
    assert len(validate_rows(path, lambda row: "bad", max_reported=3).errors) == 3


def test_validate_rows_no_rows_and_file_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,text\n")
    report = validate_rows(path, lambda row: None)
    assert [e.message for e in report.errors] == ["has no rows"]
    with pytest.raises(DatasetError, match="no such file"):
        validate_rows(tmp_path / "missing.csv", lambda row: None)


def test_validate_rows_validator_exception_propagates(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n')

    def boom(row: dict) -> str | None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        validate_rows(path, boom)


def test_validate_rows_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(100_000):
            f.write(json.dumps({"id": i, "text": "some review text " * 5, "gold": "mixed"}) + "\n")
    t0 = time.perf_counter()
    report = validate_rows(path, lambda row: None if isinstance(row.get("text"), str) else "x")
    elapsed = time.perf_counter() - t0
    assert report.rows == 100_000 and report.ok
    assert elapsed < 5.0


# ---------------------------------------------------------------- column mapping

def test_parse_mapping() -> None:
    assert parse_mapping(["review=text", "gold=a=b"]) == {"review": "text", "gold": "a=b"}
    for bad, msg in [("review", "PARAM=COLUMN"), ("review=", "PARAM=COLUMN"),
                     ("1x=text", "not a parameter name")]:
        with pytest.raises(ValueError, match=msg):
            parse_mapping([bad])
    with pytest.raises(ValueError, match="twice"):
        parse_mapping(["a=x", "a=y"])


def test_map_columns_renames() -> None:
    row = {"text": "hi", "label": "positive", "id": 3}
    assert map_columns(row, {"review": "text"}) == {"label": "positive", "id": 3, "review": "hi"}
    assert map_columns(row, {"a": "text", "b": "text"}) == {
        "label": "positive", "id": 3, "a": "hi", "b": "hi"}
    assert map_columns(row, {"id": "label"}) == {"text": "hi", "id": "positive"}
    assert map_columns(row, {}) == row


def test_map_columns_unknown_column_is_located_with_a_suggestion() -> None:
    with pytest.raises(DatasetError) as info:
        map_columns({"text": "hi", "gold": "x"}, {"review": "txet"}, path="d.csv", line=7)
    err = info.value
    assert (err.path, err.line) == ("d.csv", 7)
    assert str(err) == ("d.csv:7: no column 'txet' (for --map review=txet); did you mean "
                        "'text'? (columns: text, gold)")
    with pytest.raises(DatasetError, match=r"^no column 'zzz' \(for --map a=zzz\) \(columns"):
        map_columns({"text": "hi"}, {"a": "zzz"})


# ------------------------------------------------------------------------ digests

def test_digest_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    path = write(tmp_path / "d.jsonl", data)
    assert dataset_digest(path) == "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(DatasetError, match="no such file"):
        dataset_digest(tmp_path / "gone.jsonl")


def test_dataset_error_pickles_with_its_location() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(DatasetError("bad", path="a.csv", line=3, column=4)))
    assert (err.path, err.line, err.column, str(err)) == ("a.csv", 3, 4, "a.csv:3:4: bad")
