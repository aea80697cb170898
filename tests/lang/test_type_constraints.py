"""Field constraints in the type system: spelling, subtyping, join, JSON schema,
validation of values and of dataset rows (lang/constraints.py, lang/types.py)."""

from __future__ import annotations

import re

import pytest

from promptflow_dsl.lang.constraints import Constraints, disjoint, schema_pattern
from promptflow_dsl.lang.row_types import RowTypeError, row_value
from promptflow_dsl.lang.types import (
    FLOAT,
    INT,
    STR,
    Field,
    FloatType,
    IntType,
    ListType,
    LiteralType,
    RecordType,
    StrType,
    TypeValidationError,
    explain_mismatch,
    has_constraints,
    is_assignable,
    join,
    json_schema,
    optional,
    unconstrained,
    validate,
)

TITLE = StrType(Constraints(min_length=1, max_length=20))
CODE = StrType(Constraints(pattern=r"[A-Z]{3}-\d+"))
STARS = IntType(Constraints(min=1, max=5))
SCORE = FloatType(Constraints(min=0.0, max=1.0))
TAGS = ListType(STR, Constraints(min_items=1, max_items=3))


def test_types_show_their_constraints():
    assert TITLE.show() == "str(min_length=1, max_length=20)"
    assert CODE.show() == 'str(pattern=r"[A-Z]{3}-\\d+")'
    assert STARS.show() == "int(min=1, max=5)"
    assert SCORE.show() == "float(min=0.0, max=1.0)"
    assert TAGS.show() == "list[str](min_items=1, max_items=3)"
    assert ListType(TITLE).show() == "list[str(min_length=1, max_length=20)]"
    assert optional(STARS).show() == "int(min=1, max=5)?"
    assert StrType(Constraints(pattern='a"b')).show() == 'str(pattern="a\\"b")'


def test_unconstrained_types_are_the_singletons():
    assert StrType() == STR and IntType() == INT and FloatType() == FLOAT
    assert unconstrained(TITLE) == STR and unconstrained(TAGS) == ListType(STR)
    assert unconstrained(ListType(TITLE, Constraints(max_items=2))) == ListType(TITLE)
    assert TITLE != STR and hash(TITLE) == hash(StrType(Constraints(min_length=1, max_length=20)))
    assert has_constraints(RecordType("R", (Field.of("t", optional(ListType(TITLE))),)))
    assert not has_constraints(RecordType("R", (Field.of("t", ListType(STR)),)))


def test_a_constrained_type_is_assignable_to_its_base():
    assert is_assignable(TITLE, STR)
    assert is_assignable(STARS, INT) and is_assignable(STARS, FLOAT)
    assert is_assignable(TAGS, ListType(STR))
    assert is_assignable(ListType(TITLE), ListType(STR))


def test_a_base_type_is_assignable_to_a_constrained_one_and_checked_at_run_time():
    assert is_assignable(STR, TITLE)
    assert is_assignable(INT, SCORE)  # int -> float still holds
    assert is_assignable(IntType(Constraints(min=2, max=3)), STARS)
    assert is_assignable(IntType(Constraints(max=9)), STARS)  # may fit: checked at run time
    assert not is_assignable(STR, STARS)  # the bases decide first


def test_what_is_known_statically_is_a_mismatch():
    assert explain_mismatch(LiteralType(("",)), TITLE) == '"": at least 1 character, got 0'
    assert explain_mismatch(LiteralType(("ABC-1", "abc")), CODE) == \
        '"abc": "abc" does not match the pattern r"[A-Z]{3}-\\d+"'
    assert is_assignable(LiteralType(("ABC-1",)), CODE)
    assert explain_mismatch(IntType(Constraints(min=10)), STARS) == \
        "int(min=10) is never int(min=1, max=5): its value is at least 10, above the max=5 wanted"
    assert not is_assignable(ListType(STR, Constraints(min_items=4)), TAGS)
    assert not is_assignable(StrType(Constraints(min_length=30)), TITLE)


def test_join_of_different_constraints_is_the_base():
    assert join(TITLE, TITLE) == TITLE
    assert join(TITLE, StrType(Constraints(max_length=5))) == STR
    assert join(STARS, SCORE) == FLOAT
    assert join(TITLE, LiteralType(("x",))) == STR
    assert join(TAGS, ListType(STR)) == ListType(STR)


def test_json_schema_carries_the_constraints():
    rec = RecordType("R", (Field.of("title", TITLE), Field.of("stars", STARS),
                           Field.of("score", SCORE), Field.of("tags", ListType(CODE, Constraints(max_items=3)))))
    schema = json_schema(rec)
    assert schema["properties"] == {
        "title": {"type": "string", "minLength": 1, "maxLength": 20},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "score": {"type": "number", "minimum": 0.0, "maximum": 1.0},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^([A-Z]{3}-[0-9]+)$"},
                 "maxItems": 3},
    }
    assert json_schema(optional(STARS)) == {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 5},
                                                      {"type": "null"}]}


@pytest.mark.parametrize("pattern, sent", [
    (r"\d+", "^([0-9]+)$"),
    (r"[\w.]+@\w+", "^([A-Za-z0-9_.]+@[A-Za-z0-9_]+)$"),
    (r"a\sb", "^(a[ \\t\\n\\r\\f\\v]b)$"),
    (r"[]a]\.\D", "^([\\]a]\\.\\D)$"),
    (r"^x|y$", "^(^x|y$)$"),
])
def test_schema_patterns_are_anchored_and_ascii(pattern: str, sent: str):
    assert schema_pattern(pattern) == sent
    re.compile(sent)


@pytest.mark.parametrize("value, t, message", [
    ("", TITLE, "$: at least 1 character, got 0"),
    ("x" * 21, TITLE, "$: at most 20 characters, got 21"),
    ("abc-1", CODE, '$: "abc-1" does not match the pattern r"[A-Z]{3}-\\d+"'),
    ("ABC-1x", CODE, '$: "ABC-1x" does not match the pattern r"[A-Z]{3}-\\d+"'),  # whole text
    (0, STARS, "$: at least 1, got 0"),
    (6, STARS, "$: at most 5, got 6"),
    (1.5, SCORE, "$: at most 1.0, got 1.5"),
    ([], TAGS, "$: at least 1 item, got 0"),
    (["a", "b", "c", "d"], TAGS, "$: at most 3 items, got 4"),
    ({"t": "x" * 30}, RecordType("R", (Field.of("t", TITLE),)), "$.t: at most 20 characters, got 30"),
    ([["a"], []], ListType(TAGS), "$[1]: at least 1 item, got 0"),
])
def test_validation_reports_the_violation_at_its_path(value, t, message):
    with pytest.raises(TypeValidationError) as info:
        validate(value, t)
    assert str(info.value) == message


def test_values_that_meet_the_constraints_pass():
    assert validate("ABC-12", CODE) == "ABC-12"
    assert validate(1, SCORE) == 1.0
    assert validate(3, STARS) == 3
    assert validate(["a"], TAGS) == ["a"]
    assert validate(None, optional(STARS)) is None
    with pytest.raises(TypeValidationError, match="expected int"):  # the base first
        validate("3", STARS)


def test_disjoint_ranges():
    assert disjoint(Constraints(min=1), Constraints(max=5)) is None
    assert disjoint(Constraints(min_length=3), Constraints(max_length=2)) is not None
    assert disjoint(Constraints(max_items=0), Constraints(min_items=1)) is not None


def test_dataset_rows_meet_the_constraints():
    row_t = RecordType("Row", (Field.of("title", TITLE), Field.of("stars", STARS)))
    assert row_value({"title": "Good", "stars": 4}, row_t) == {"title": "Good", "stars": 4}
    with pytest.raises(RowTypeError) as info:
        row_value({"title": "x" * 25, "stars": 4}, row_t)
    assert info.value.message == "field 'title': at most 20 characters, got 25"
    assert info.value.field == "title"
    with pytest.raises(RowTypeError) as info:
        row_value({"title": "", "stars": "9"}, row_t, text_cells=True)  # CSV: empty text is ""
    assert info.value.message == "field 'title': at least 1 character, got 0"
    with pytest.raises(RowTypeError) as info:
        row_value({"title": "ok", "stars": "9"}, row_t, text_cells=True)
    assert info.value.message == "field 'stars': at most 5, got 9"


def test_pydantic_models_of_records_check_the_constraints():
    import pydantic

    from promptflow_dsl.lang.types import pydantic_model

    model = pydantic_model(RecordType("R", (Field.of("title", TITLE), Field.of("tags", TAGS))))
    assert model(title="Fine", tags=["a"]).title == "Fine"
    with pytest.raises(pydantic.ValidationError, match="at most 20 characters, got 21"):
        model(title="x" * 21, tags=["a"])
    with pytest.raises(pydantic.ValidationError, match="at least 1 item, got 0"):
        model(title="Fine", tags=[])
