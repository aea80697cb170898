"""Tests for promptflow_dsl.lang.types: subtyping, join, spelling, schemas, models, validation."""

from __future__ import annotations

import subprocess
import sys
import typing

import pydantic
import pytest

from promptflow_dsl.lang.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    DictType,
    Field,
    ListType,
    LiteralType,
    OptionalType,
    RecordType,
    TypeValidationError,
    explain_mismatch,
    extra_fields,
    is_assignable,
    join,
    json_schema,
    optional,
    pydantic_model,
    validate,
)

SENT = LiteralType(("positive", "negative"))
VERDICT = RecordType("Verdict", (
    Field.of("label", LiteralType(("a", "b"))),
    Field.of("reason", STR),
    Field.of("score", FLOAT, 0.5),
    Field.of("tags", optional(ListType(STR))),
))


def rec(*fields: Field, name: str | None = None) -> RecordType:
    return RecordType(name, fields)


# --------------------------------------------------------------------------- construction


def test_scalars_are_distinct_and_hashable():
    scalars = [STR, INT, FLOAT, BOOL, ANY, NONE]
    assert len(set(scalars)) == 6
    assert STR == type(STR)() and STR != INT


def test_types_are_frozen():
    with pytest.raises(AttributeError):
        ListType(STR).item = INT  # type: ignore[misc]


def test_optional_flattens():
    assert optional(optional(STR)) == OptionalType(STR)
    assert optional(NONE) == NONE
    assert optional(ANY) == ANY
    for bad in (OptionalType(STR), NONE, ANY):
        with pytest.raises(TypeError):
            OptionalType(bad)


def test_literal_dedupes_keeps_order_and_ignores_order_for_equality():
    lit = LiteralType(("b", "a", "b"))
    assert lit.values == ("b", "a")
    assert lit == LiteralType(("a", "b"))
    assert hash(lit) == hash(LiteralType(("a", "b")))
    with pytest.raises(ValueError):
        LiteralType(())


def test_field_required_rule():
    assert Field.of("a", STR).required
    assert not Field.of("a", optional(STR)).required
    f = Field.of("a", FLOAT, 0.5)
    assert not f.required and f.default == 0.5
    # list defaults do not break hashing
    assert hash(Field.of("t", ListType(STR), [])) == hash(Field.of("t", ListType(STR), ["x"]))


def test_records_compare_by_name_and_fields():
    a = rec(Field.of("x", INT), name="A")
    assert a == rec(Field.of("x", INT), name="A")
    assert a != rec(Field.of("x", INT), name="B")
    assert a != rec(Field.of("x", STR), name="A")
    assert len({a, rec(Field.of("x", INT), name="A")}) == 1
    with pytest.raises(ValueError):
        rec(Field.of("x", INT), Field.of("x", STR))


# --------------------------------------------------------------------------- show


@pytest.mark.parametrize("t, text", [
    (STR, "str"), (INT, "int"), (FLOAT, "float"), (BOOL, "bool"), (ANY, "any"), (NONE, "none"),
    (ListType(STR), "list[str]"),
    (optional(ListType(STR)), "list[str]?"),
    (DictType(ListType(INT)), "dict[str, list[int]]"),
    (SENT, '"positive" | "negative"'),
    (LiteralType(("only",)), '"only"'),
    (optional(LiteralType(("only",))), '"only"?'),
    (optional(SENT), '("positive" | "negative")?'),
    (VERDICT, "Verdict"),
    (rec(Field.of("a", STR), Field.of("b", optional(INT))), "{a: str, b: int?}"),
    (rec(Field.of("s", FLOAT, 0.5), Field.of("v", VERDICT)), "{s: float = 0.5, v: Verdict}"),
    (rec(), "{}"),
])
def test_show(t, text):
    assert t.show() == text
    assert str(t) == text


# --------------------------------------------------------------------------- subtyping

POSITIVE = [
    (STR, STR), (VERDICT, VERDICT),
    (STR, ANY), (ANY, STR), (ANY, VERDICT), (optional(INT), ANY), (NONE, ANY),
    (LiteralType(("a",)), STR), (SENT, STR),
    (LiteralType(("positive",)), SENT), (LiteralType(("negative", "positive")), SENT),
    (INT, FLOAT),
    (STR, optional(STR)), (NONE, optional(STR)), (optional(INT), optional(FLOAT)),
    (INT, optional(FLOAT)), (SENT, optional(STR)),
    (ListType(INT), ListType(FLOAT)), (ListType(SENT), ListType(STR)), (ListType(ANY), ListType(INT)),
    (DictType(INT), DictType(FLOAT)), (DictType(LiteralType(("a",))), DictType(STR)),
    # records: width and depth, names do not matter
    (rec(Field.of("a", STR), Field.of("b", INT)), rec(Field.of("a", STR))),
    (rec(Field.of("a", LiteralType(("x",)))), rec(Field.of("a", STR), name="R")),
    (rec(Field.of("a", INT), name="A"), rec(Field.of("a", FLOAT), name="B")),
    (rec(), rec(Field.of("opt", optional(STR)), Field.of("d", INT, 1))),
    (rec(Field.of("v", rec(Field.of("x", INT), Field.of("y", INT)))), rec(Field.of("v", rec(Field.of("x", FLOAT))))),
    (ListType(rec(Field.of("a", STR), Field.of("b", STR))), ListType(rec(Field.of("a", STR)))),
]

NEGATIVE = [
    (STR, INT), (INT, STR), (FLOAT, INT), (BOOL, INT), (INT, BOOL), (BOOL, FLOAT),
    (STR, SENT), (LiteralType(("maybe",)), SENT), (SENT, LiteralType(("positive",))),
    (optional(STR), STR), (NONE, STR), (STR, NONE), (optional(FLOAT), optional(INT)),
    (ListType(FLOAT), ListType(INT)), (ListType(STR), STR), (STR, ListType(STR)),
    (DictType(STR), DictType(INT)), (ListType(STR), DictType(STR)), (DictType(STR), VERDICT),
    (VERDICT, STR), (STR, VERDICT),
    (rec(Field.of("a", STR)), rec(Field.of("a", STR), Field.of("b", INT))),
    (rec(Field.of("a", STR)), rec(Field.of("a", INT))),
    (rec(Field.of("a", optional(STR))), rec(Field.of("a", STR))),
    (rec(Field.of("v", rec(Field.of("x", STR)))), rec(Field.of("v", rec(Field.of("x", INT))))),
]


@pytest.mark.parametrize("src, dst", POSITIVE)
def test_assignable(src, dst):
    assert is_assignable(src, dst)
    assert explain_mismatch(src, dst) == ""


@pytest.mark.parametrize("src, dst", NEGATIVE)
def test_not_assignable(src, dst):
    assert not is_assignable(src, dst)
    assert explain_mismatch(src, dst) != ""


def test_optional_field_in_dst_may_be_missing_but_must_match_when_present():
    dst = rec(Field.of("a", optional(INT)))
    assert is_assignable(rec(), dst)
    assert not is_assignable(rec(Field.of("a", STR)), dst)


@pytest.mark.parametrize("src, dst, message", [
    (rec(Field.of("label", LiteralType(("maybe",)))), rec(Field.of("label", SENT)),
     "field 'label': \"maybe\" is not one of \"positive\" | \"negative\""),
    (LiteralType(("maybe", "positive", "unsure")), SENT,
     '"maybe", "unsure" are not one of "positive" | "negative"'),
    (rec(Field.of("label", STR)), VERDICT, "field 'label': str is not \"a\" | \"b\""),
    (rec(Field.of("label", LiteralType(("a",)))), VERDICT, "missing field 'reason'"),
    (ListType(INT), ListType(STR), "list item: int is not str"),
    (DictType(INT), DictType(STR), "dict value: int is not str"),
    (ListType(ListType(FLOAT)), ListType(ListType(INT)), "list item: list item: float is not int"),
    (optional(STR), STR, "str? may be none, but str is not optional"),
    (NONE, ListType(STR), "none is not list[str] (declare it optional: list[str]?)"),
    (optional(STR), optional(INT), "str is not int"),
    (BOOL, INT, "bool is not int"),
    (VERDICT, STR, "Verdict is not str"),
    (rec(Field.of("v", rec(Field.of("x", STR)))), rec(Field.of("v", rec(Field.of("x", INT)))),
     "field 'v': field 'x': str is not int"),
])
def test_explain_mismatch(src, dst, message):
    assert explain_mismatch(src, dst) == message


def test_extra_fields():
    src = rec(Field.of("label", STR), Field.of("confidence", FLOAT), Field.of("note", STR))
    assert extra_fields(src, VERDICT) == ["confidence", "note"]
    assert extra_fields(VERDICT, VERDICT) == []


# --------------------------------------------------------------------------- join


@pytest.mark.parametrize("a, b, joined", [
    (STR, STR, STR),
    (VERDICT, VERDICT, VERDICT),
    (NONE, STR, optional(STR)),
    (STR, NONE, optional(STR)),
    (NONE, NONE, NONE),
    (NONE, optional(INT), optional(INT)),
    (LiteralType(("a",)), LiteralType(("b", "a")), LiteralType(("a", "b"))),
    (LiteralType(("a",)), STR, STR),
    (STR, LiteralType(("a",)), STR),
    (INT, FLOAT, FLOAT),
    (FLOAT, INT, FLOAT),
    (optional(STR), STR, optional(STR)),
    (INT, optional(FLOAT), optional(FLOAT)),
    (ListType(INT), ListType(FLOAT), ListType(FLOAT)),
    (ListType(INT), ListType(STR), ListType(ANY)),
    (DictType(LiteralType(("x",))), DictType(STR), DictType(STR)),
    (STR, INT, ANY),
    (BOOL, INT, ANY),
    (optional(STR), INT, ANY),
    (ANY, STR, ANY),
    (ListType(STR), DictType(STR), ANY),
    (VERDICT, STR, ANY),
    (rec(Field.of("a", STR), Field.of("b", INT)), rec(Field.of("a", STR)), rec(Field.of("a", STR))),
    (rec(Field.of("a", STR)), rec(Field.of("b", STR)), ANY),
])
def test_join(a, b, joined):
    assert join(a, b) == joined


def test_join_literal_keeps_first_seen_order():
    assert join(LiteralType(("b",)), LiteralType(("a", "b"))).values == ("b", "a")


# --------------------------------------------------------------------------- JSON schema


@pytest.mark.parametrize("t, schema", [
    (STR, {"type": "string"}),
    (INT, {"type": "integer"}),
    (FLOAT, {"type": "number"}),
    (BOOL, {"type": "boolean"}),
    (NONE, {"type": "null"}),
    (ANY, {}),
    (SENT, {"type": "string", "enum": ["positive", "negative"]}),
    (ListType(STR), {"type": "array", "items": {"type": "string"}}),
    (DictType(INT), {"type": "object", "additionalProperties": {"type": "integer"}}),
    (optional(INT), {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
])
def test_json_schema_simple(t, schema):
    assert json_schema(t) == schema


def test_json_schema_records():
    inner = rec(Field.of("x", INT))
    outer = rec(Field.of("verdict", VERDICT), Field.of("pos", optional(inner)))
    assert json_schema(outer) == {
        "type": "object",
        "properties": {
            "verdict": {
                "type": "object",
                "title": "Verdict",
                "properties": {
                    "label": {"type": "string", "enum": ["a", "b"]},
                    "reason": {"type": "string"},
                    "score": {"type": "number"},
                    "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
                },
                "required": ["label", "reason"],
                "additionalProperties": False,
            },
            "pos": {"anyOf": [{
                "type": "object",
                "properties": {"x": {"type": "integer"}},
                "required": ["x"],
                "additionalProperties": False,
            }, {"type": "null"}]},
        },
        "required": ["verdict"],
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------- pydantic models


def test_model_basics_literals_optionals_defaults():
    model = pydantic_model(VERDICT)
    assert model.__name__ == "Verdict"
    assert model.__pflow_type__ is VERDICT
    m = model(label="a", reason="because")
    assert (m.label, m.reason, m.score, m.tags) == ("a", "because", 0.5, None)
    assert model.model_fields["label"].annotation == typing.Literal["a", "b"]
    with pytest.raises(pydantic.ValidationError):
        model(label="c", reason="r")
    with pytest.raises(pydantic.ValidationError):
        model(label="a")  # reason is required
    with pytest.raises(pydantic.ValidationError):
        model(label="a", reason="r", extra=1)  # extra="forbid"
    with pytest.raises(pydantic.ValidationError):
        model(label="a", reason="r", score=True)  # bools are not numbers
    assert model(label="a", reason="r", score=1).score == 1.0


def test_model_is_cached_per_type():
    again = RecordType("Verdict", tuple(VERDICT.fields))
    assert pydantic_model(again) is pydantic_model(VERDICT)
    assert pydantic_model(rec(Field.of("x", INT))) is not pydantic_model(rec(Field.of("x", STR)))


def test_model_nested_records_and_mutable_defaults():
    inner = rec(Field.of("x", INT), name="Inner")
    outer = rec(Field.of("inner", inner), Field.of("items", ListType(inner), []), name="Outer")
    model = pydantic_model(outer)
    m = model.model_validate({"inner": {"x": 1}})
    assert isinstance(m.inner, pydantic_model(inner))
    assert m.items == []
    m.items.append("mutated")
    assert model.model_validate({"inner": {"x": 2}}).items == []


def test_model_awkward_field_names_use_aliases():
    names = ["model_config", "json", "schema", "copy", "dict", "fields", "a-b", "class", "_x", "1st", "json_"]
    r = rec(*(Field.of(n, INT, i) for i, n in enumerate(names)), name="Awkward")
    model = pydantic_model(r)
    assert set(model.__pflow_fields__) == set(names)
    assert len(set(model.__pflow_fields__.values())) == len(names)
    m = model.model_validate({"model_config": 10, "json": 11, "a-b": 12})
    dumped = m.model_dump(by_alias=True)
    assert list(dumped) == names
    assert (dumped["model_config"], dumped["json"], dumped["a-b"], dumped["class"]) == (10, 11, 12, 7)
    assert getattr(m, model.__pflow_fields__["json"]) == 11
    assert isinstance(model.model_config, dict)  # the class itself is intact
    assert set(model.model_json_schema()["properties"]) == set(names)


def test_model_inline_name_and_non_record():
    assert pydantic_model(rec(Field.of("a", STR))).__name__ == "InlineRecord"
    assert pydantic_model(rec(Field.of("a", STR), name="mod.T")).__name__ == "mod_T"
    with pytest.raises(TypeError):
        pydantic_model(STR)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- validate


@pytest.mark.parametrize("value, t, result", [
    ("x", STR, "x"), (3, INT, 3), (3, FLOAT, 3.0), (2.5, FLOAT, 2.5), (True, BOOL, True),
    (None, NONE, None), ({"any": [1]}, ANY, {"any": [1]}),
    ("positive", SENT, "positive"),
    (None, optional(INT), None), (4, optional(INT), 4),
    ([1, 2], ListType(FLOAT), [1.0, 2.0]), ((1, 2), ListType(INT), [1, 2]),
    ({"a": 1}, DictType(FLOAT), {"a": 1.0}),
])
def test_validate_ok(value, t, result):
    out = validate(value, t)
    assert out == result and type(out) is type(result)


def test_validate_record_returns_model_instance():
    out = validate({"label": "b", "reason": "r", "score": 1, "tags": ["t"]}, VERDICT)
    assert isinstance(out, pydantic_model(VERDICT))
    assert out.score == 1.0 and isinstance(out.score, float)
    assert validate(out, VERDICT) is out
    # an instance of a structurally compatible record's model is re-validated
    wider = rec(*VERDICT.fields, Field.of("extra", optional(STR)), name="Wider")
    narrower = rec(Field.of("label", LiteralType(("a", "b"))), Field.of("reason", STR))
    inst = validate({"label": "a", "reason": "r"}, narrower)
    assert validate(inst, wider).model_dump() == {"label": "a", "reason": "r", "score": 0.5, "tags": None, "extra": None}


@pytest.mark.parametrize("value, t, path, message", [
    (3, STR, "$", "expected str, got int 3"),
    (True, INT, "$", "expected int, got bool true"),
    (3.0, INT, "$", "expected int, got float 3.0"),
    (False, FLOAT, "$", "expected float, got bool false"),
    ("3", FLOAT, "$", 'expected float, got str "3"'),
    (1, BOOL, "$", "expected bool, got int 1"),
    (0, NONE, "$", "expected none, got int 0"),
    (None, STR, "$", "expected str, got none"),
    ("maybe", SENT, "$", 'expected "positive" | "negative", got str "maybe"'),
    (1, SENT, "$", 'expected "positive" | "negative", got int 1'),
    ("x", optional(INT), "$", 'expected int, got str "x"'),
    ({"a": 1}, ListType(STR), "$", "expected list[str], got dict"),
    (["a", "b", 3], ListType(STR), "$[2]", "expected str, got int 3"),
    ([1], DictType(INT), "$", "expected dict[str, int], got list"),
    ({"ok": 1, "bad key": "x"}, DictType(INT), '$["bad key"]', 'expected int, got str "x"'),
    ({1: 1}, DictType(INT), "$", "dict key 1 is not a str"),
    ("x" * 50, INT, "$", 'expected int, got str "' + "x" * 36 + "..."),
    ("text", VERDICT, "$", 'expected Verdict, got str "text"'),
    ({"label": "maybe", "reason": "r"}, VERDICT, "$.label", 'expected "a" | "b", got str "maybe"'),
    ({"label": "a"}, VERDICT, "$", "missing required field 'reason' of type str"),
    ({"label": "a", "reason": "r", "tags": ["x", 1]}, VERDICT, "$.tags[1]", "expected str, got int 1"),
    ({"label": "a", "reason": "r", "why": 1}, VERDICT, "$.why",
     "unexpected field 'why' (Verdict has fields: label, reason, score, tags)"),
    ({"label": "a", "reason": None}, VERDICT, "$.reason", "expected str, got none"),
    ([{"label": "a", "reason": "r"}, {"label": "a", "reason": "r", "score": "high"}], ListType(VERDICT),
     "$[1].score", 'expected float, got str "high"'),
    ({"v": {"inner": {"x": "s"}}}, rec(Field.of("v", rec(Field.of("inner", rec(Field.of("x", INT)))))),
     "$.v.inner.x", 'expected int, got str "s"'),
])
def test_validate_errors(value, t, path, message):
    with pytest.raises(TypeValidationError) as info:
        validate(value, t)
    assert (info.value.path, info.value.message) == (path, message)
    assert str(info.value) == f"{path}: {message}"
    assert isinstance(info.value, ValueError)


def test_validate_bad_default_is_reported():
    r = rec(Field.of("n", INT, "oops"), name="Bad")
    with pytest.raises(TypeValidationError) as info:
        validate({}, r)
    assert info.value.path == "$"
    assert info.value.message.startswith("invalid Bad: ")


def test_validate_inline_record_message_uses_inline_spelling():
    with pytest.raises(TypeValidationError) as info:
        validate(5, rec(Field.of("a", STR), Field.of("b", optional(INT))))
    assert info.value.message == "expected {a: str, b: int?}, got int 5"


# --------------------------------------------------------------------------- start-up cost


def test_import_does_not_import_pydantic():
    code = (
        "import sys\n"
        "import promptflow_dsl.lang.types as t\n"
        "t.join(t.INT, t.FLOAT); t.json_schema(t.ListType(t.STR)); t.validate([1], t.ListType(t.INT))\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
        "t.pydantic_model(t.RecordType('R', (t.Field.of('a', t.STR),)))\n"
        "assert 'pydantic' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
