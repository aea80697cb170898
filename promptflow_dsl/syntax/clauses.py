"""Validation of clause bodies (``word value`` pairs) into typed AST fields.

The grammar parses every clause body the same way; for each clause body (a
declaration kind, or a part of one such as a route's ``expert``) a
:data:`ClauseSpec` says which clause words exist, what shape each value must have
(a string, an integer literal, a name, a call...) and which AST field it fills.
The ``hook`` body is the language's own (below); each handler kind brings its own
in ``kinds/<kind>/clauses.py``, found through the kinds registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..diagnostics import Diagnostic, Span, error
from ..kinds import registry
from . import ast


@dataclass(frozen=True)
class Clause:
    word: str
    word_span: Span
    value: ast.Expr
    span: Span


@dataclass
class ClauseSet:
    kind: str  # the clause body: prompt | decompose | route | expert | sketch | hook
    owner: str  # the declaration's name, for messages
    clauses: list[Any]


def has_clause(items: list[Any], word: str) -> bool:
    return any(isinstance(c, Clause) and c.word == word for c in items)


class Bad(Exception):
    """A clause value of the wrong shape; the message says what was expected."""


def as_ref(v: ast.Expr) -> ast.Ref:
    parts: list[str] = []
    node = v
    while isinstance(node, ast.Attr):
        parts.append(node.name)
        node = node.obj
    if isinstance(node, ast.Name):
        parts.append(node.name)
        if len(parts) <= 2:
            return ast.Ref(v.span, tuple(reversed(parts)))
    raise Bad("expected a name (or alias.name)")


def as_str(v: ast.Expr) -> ast.Str:
    if isinstance(v, ast.Str):
        return v
    raise Bad("expected a string")


def as_int(v: ast.Expr) -> ast.Int:
    if isinstance(v, ast.Int):
        return v
    raise Bad("expected an integer")


def as_bool(v: ast.Expr) -> ast.Bool:
    if isinstance(v, ast.Bool):
        return v
    raise Bad("expected true or false")


def as_name(v: ast.Expr) -> ast.Name:
    if isinstance(v, ast.Name):
        return v
    raise Bad("expected a word")


def as_record(v: ast.Expr) -> ast.RecordExpr:
    if isinstance(v, ast.RecordExpr):
        return v
    raise Bad("expected a record { key: value, ... }")


def as_refs(v: ast.Expr) -> tuple[ast.Ref, ...]:
    if isinstance(v, ast.ListExpr):
        return tuple(as_ref(i) for i in v.items)
    raise Bad("expected a list of names [a, b]")


def as_trigger(v: ast.Expr) -> ast.Expr:
    if isinstance(v, (ast.Str, ast.Call)):
        return v
    raise Bad('expected a regular expression r"..." or a call of a handler returning bool')


def as_call(v: ast.Expr) -> ast.Call:
    if isinstance(v, ast.Call):
        return v
    raise Bad("expected a call, e.g. handler(arg=value)")


def as_expr(v: ast.Expr) -> ast.Expr:
    return v


Conv = Callable[[ast.Expr], Any]


@dataclass(frozen=True)
class Repeated:
    """A clause that may be written more than once: each occurrence becomes
    ``make(clause, value)``, appended to the tuple in ``field`` (the role messages
    of a prompt); the field is ``()`` when none is written."""

    field: str
    conv: Conv
    make: Callable[[Clause, Any], Any]


# clause word -> (AST field, converter), or a Repeated clause
ClauseSpec = Mapping[str, "tuple[str, Conv] | Repeated"]

#: the clauses every model-calling kind takes
COMMON: dict[str, tuple[str, Conv]] = {
    "model": ("model", as_ref),
    "params": ("settings", as_record),
}
HOOK: dict[str, tuple[str, Conv]] = {
    "when": ("when", as_trigger), "if": ("if", as_expr), "run": ("run", as_call),
    "action": ("action", as_name), "max_fires": ("max_fires", as_int),
}


@cache
def specs() -> dict[str, ClauseSpec]:
    """Every clause body: ``hook`` and those of each handler kind."""
    out: dict[str, ClauseSpec] = {"hook": HOOK}
    for kind in registry.KINDS:
        out.update(registry.syntax(kind).CLAUSES)
    return out


def apply_clauses(cs: ClauseSet, diagnostics: list[Diagnostic]) -> dict[str, Any]:
    """Turn a clause list into AST fields; problems are appended to ``diagnostics``."""
    from .builder import suggest

    spec = specs()[cs.kind]
    fields: dict[str, Any] = {}
    seen: dict[str, Any] = {}
    repeated: dict[str, list[Any]] = {e.field: [] for e in spec.values() if isinstance(e, Repeated)}
    for cl in cs.clauses:
        if not hasattr(cl, "word"):  # an expert block where only clauses are allowed
            diagnostics.append(error(cl.span, f"unexpected block in {cs.kind} '{cs.owner}'"))
            continue
        entry = spec.get(cl.word)
        if entry is None:
            words = ", ".join(spec)
            diagnostics.append(error(
                cl.word_span,
                f"unknown clause '{cl.word}' in {cs.kind} '{cs.owner}'{suggest(cl.word, list(spec))}"
                f" (expected one of: {words})"))
            continue
        conv = entry.conv if isinstance(entry, Repeated) else entry[1]
        try:
            value = conv(cl.value)
        except Bad as bad:
            diagnostics.append(error(cl.value.span, f"`{cl.word}` {bad}"))
            continue
        if isinstance(entry, Repeated):
            repeated[entry.field].append(entry.make(cl, value))
            continue
        if cl.word in seen:
            diagnostics.append(error(cl.word_span, f"duplicate `{cl.word}` clause in {cs.kind} '{cs.owner}'"))
            continue
        seen[cl.word] = cl
        fields[entry[0]] = value
    fields.update({name: tuple(items) for name, items in repeated.items()})
    return fields
