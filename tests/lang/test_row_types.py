"""Dataset rows as values of an eval's row type: JSONL values and CSV cells."""

from __future__ import annotations

import pytest

from promptflow_dsl.lang.row_types import RowTypeError, missing_columns, row_value
from promptflow_dsl.lang.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    STR,
    DictType,
    Field,
    ListType,
    LiteralType,
    RecordType,
    optional,
)

LABEL = LiteralType(("positive", "negative"))
ROW = RecordType("Row", (
    Field.of("id", STR),
    Field.of("n", INT),
    Field.of("score", optional(FLOAT)),
    Field.of("ok", BOOL, True),
    Field.of("tags", ListType(STR), []),
    Field.of("note", optional(STR)),
    Field.of("gold", LABEL),
    Field("meta", ANY, False),  # as the checker declares an `any` field: not required
    Field.of("extra", DictType(INT), {}),
))


def csv(**cells: str) -> dict:
    return row_value(cells, ROW, text_cells=True)


def test_csv_cells_convert_by_field_type():
    assert csv(id="7", n="3", score="0.5", ok="false", tags='["a", "b"]', note="hi",
               gold="negative", meta="[1]", extra='{"x": 1}') == {
        "id": "7", "n": 3, "score": 0.5, "ok": False, "tags": ["a", "b"], "note": "hi",
        "gold": "negative", "meta": "[1]", "extra": {"x": 1}}


def test_empty_cells_are_no_value():
    # optional -> none, default -> the default, required text -> "", text `any` -> absent
    assert csv(id="", n=" 4 ", score="", ok="", tags="", note="", gold="positive", meta="",
               extra="") == {"id": "", "n": 4, "score": None, "ok": True, "tags": [],
                             "note": None, "gold": "positive", "meta": None, "extra": {}}


def test_other_columns_are_left_out():
    assert row_value({"id": "1", "n": 1, "gold": "positive", "unused": 1, "meta": None}, ROW) == {
        "id": "1", "n": 1, "score": None, "ok": True, "tags": [], "note": None,
        "gold": "positive", "meta": None, "extra": {}}


@pytest.mark.parametrize(("cells", "message", "field"), [
    ({"n": ""}, "field 'n': the cell is empty, and int needs a value", "n"),
    ({"n": "x"}, "field 'n': expected int written as JSON, got the text 'x'", "n"),
    ({"n": "NaN"}, "field 'n': expected int written as JSON, got the text 'NaN'", "n"),
    ({"n": "2.5"}, "field 'n': expected int, got float 2.5", "n"),
    ({"ok": "True"}, "field 'ok': expected bool written as JSON, got the text 'True'", "ok"),
    ({"gold": "angry"}, 'field \'gold\': expected "positive" | "negative", got str "angry"', "gold"),
    ({"tags": '["a", 1]'}, "field 'tags[1]': expected str, got int 1", "tags"),
])
def test_csv_problems(cells: dict, message: str, field: str):
    row = {"id": "1", "n": "1", "gold": "positive", **cells}
    with pytest.raises(RowTypeError) as info:
        row_value(row, ROW, text_cells=True)
    assert (info.value.message, info.value.field) == (message, field)


def test_jsonl_values_are_not_converted():
    with pytest.raises(RowTypeError, match=r"^field 'n': expected int, got str \"3\"$"):
        row_value({"id": "1", "n": "3", "gold": "positive"}, ROW)
    assert row_value({"id": "1", "n": 3, "score": 2, "gold": "positive"}, ROW)["score"] == 2.0


def test_a_missing_field_suggests_a_column():
    with pytest.raises(RowTypeError) as info:
        row_value({"id": "1", "nn": 3, "gold": "positive"}, ROW)
    assert info.value.message == "missing required field 'n' of type int; did you mean 'nn'?"
    assert info.value.field == "n"


def test_nested_records_stay_strict():
    t = RecordType("T", (Field.of("inner", RecordType("I", (Field.of("a", INT),))),))
    with pytest.raises(RowTypeError, match=r"^field 'inner.b': unexpected field 'b'"):
        row_value({"inner": {"a": 1, "b": 2}}, t)
    assert row_value({"inner": '{"a": 1}'}, t, text_cells=True) == {"inner": {"a": 1}}


def test_missing_columns():
    assert missing_columns(["id", "nn", "glod", "x"], ROW) == [
        "no column 'n' for the required field 'n' of Row; did you mean 'nn'?",
        "no column 'gold' for the required field 'gold' of Row; did you mean 'glod'?",
    ]
    assert missing_columns(["id", "n", "gold"], ROW) == []
