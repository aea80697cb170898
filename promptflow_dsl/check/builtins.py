"""Signatures of the built-in functions and the test-only counters.

Each built-in has named parameters (so it can be called with keywords like a
handler) and a typing rule: given the argument types it either returns the
result type or says which argument is wrong.  A declaration of the same name
shadows a built-in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..lang.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    AnyType,
    DictType,
    ListType,
    OptionalType,
    Type,
    is_assignable,
    optional,
)


class ArgError(Exception):
    """Raised by a typing rule: argument ``index`` is not acceptable."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


Rule = Callable[[list[Type]], Type]


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[str, ...]
    required: int  # how many leading params are required
    rule: Rule
    doc: str

    def show(self) -> str:
        ps = [p if i < self.required else f"{p}=..." for i, p in enumerate(self.params)]
        return f"{self.name}({', '.join(ps)})"


def _need(t: Type, want: Type, i: int, what: str) -> None:
    if not is_assignable(t, want):
        raise ArgError(i, f"expects {what}, got {t.show()}")


def _list_item(t: Type, i: int) -> Type:
    if isinstance(t, AnyType):
        return ANY
    if isinstance(t, ListType):
        return t.item
    raise ArgError(i, f"expects a list, got {t.show()}")


def _join(a: list[Type]) -> Type:
    _need(a[0], ListType(STR), 0, "list[str]")
    _need(a[1], STR, 1, "str")
    return STR


def _len(a: list[Type]) -> Type:
    t = a[0]
    if not isinstance(t, (AnyType, ListType, DictType)) and not is_assignable(t, STR):
        raise ArgError(0, f"expects a str, list or dict, got {t.show()}")
    return INT


def _to_number(result: Type) -> Rule:
    def rule(a: list[Type]) -> Type:
        if not (is_assignable(a[0], FLOAT) or is_assignable(a[0], STR) or a[0] == BOOL):
            raise ArgError(0, f"expects a number, bool or str, got {a[0].show()}")
        return result
    return rule


def _text_fn(a: list[Type]) -> Type:
    _need(a[0], STR, 0, "str")
    return STR


def _split(a: list[Type]) -> Type:
    _need(a[0], STR, 0, "str")
    if len(a) > 1:
        _need(a[1], optional(STR), 1, "str or none")
    return ListType(STR)


def _flatten(a: list[Type]) -> Type:
    inner = _list_item(a[0], 0)
    if isinstance(inner, AnyType):
        return ListType(ANY)
    if isinstance(inner, ListType):
        return ListType(inner.item)
    raise ArgError(0, f"expects a list of lists, got {a[0].show()}")


def _unique(a: list[Type]) -> Type:
    return ListType(_list_item(a[0], 0))


def _parse_json(a: list[Type]) -> Type:
    _need(a[0], STR, 0, "str")
    return ANY


def _file(result: Type) -> Rule:
    def rule(a: list[Type]) -> Type:
        _need(a[0], STR, 0, "a str path")
        return result
    return rule


BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("join", ("items", "sep"), 2, _join, "join(list[str], sep) -> str: the items joined by sep"),
    Builtin("len", ("value",), 1, _len, "len(str | list | dict) -> int"),
    Builtin("str", ("value",), 1, lambda a: STR, "str(any) -> str: text of a value"),
    Builtin("int", ("value",), 1, _to_number(INT), "int(value) -> int"),
    Builtin("float", ("value",), 1, _to_number(FLOAT), "float(value) -> float"),
    Builtin("json", ("value",), 1, lambda a: STR, "json(any) -> str: compact JSON, non-ASCII kept"),
    Builtin("parse_json", ("text",), 1, _parse_json, "parse_json(str) -> any"),
    Builtin("lower", ("text",), 1, _text_fn, "lower(str) -> str"),
    Builtin("upper", ("text",), 1, _text_fn, "upper(str) -> str"),
    Builtin("strip", ("text",), 1, _text_fn, "strip(str) -> str"),
    Builtin("split", ("text", "sep"), 1, _split, "split(str, sep=none) -> list[str]"),
    Builtin("flatten", ("items",), 1, _flatten, "flatten(list[list[T]]) -> list[T]"),
    Builtin("unique", ("items",), 1, _unique, "unique(list[T]) -> list[T]: first occurrence kept"),
    Builtin("read_text", ("path",), 1, _file(STR),
            "read_text(path) -> str: a UTF-8 file, relative to the declaring .pflow file"),
    Builtin("read_jsonl", ("path",), 1, _file(ListType(ANY)),
            "read_jsonl(path) -> list[any]: one JSON value per non-blank line of a file"),
)}

# Counters usable only inside `test` blocks: the argument names a declaration.
COUNTERS: dict[str, tuple[str, Type]] = {
    "calls": ("handler", INT),
    "hook_fires": ("hook", INT),
    "routed": ("route", optional(STR)),
    "evaluate": ("eval", ANY),  # runs an eval; typed by check/evals.py from its metrics
}

__all__ = ["ArgError", "BUILTINS", "Builtin", "COUNTERS", "NONE", "OptionalType"]
