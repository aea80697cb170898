"""Validation of clause bodies (``word value`` pairs) into typed AST fields.

The grammar parses every clause body the same way; this module knows, for each
declaration kind, which clause words exist, what shape each value must have
(a string, an integer literal, a name, a call...) and which AST field it fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..diagnostics import Diagnostic, error
from . import ast


@dataclass
class ClauseSet:
    kind: str  # prompt | decompose | route | expert | sketch | hook
    owner: str  # the declaration's name, for messages
    clauses: list[Any]


class _Bad(Exception):
    pass


def _as_ref(v: ast.Expr) -> ast.Ref:
    parts: list[str] = []
    node = v
    while isinstance(node, ast.Attr):
        parts.append(node.name)
        node = node.obj
    if isinstance(node, ast.Name):
        parts.append(node.name)
        if len(parts) <= 2:
            return ast.Ref(v.span, tuple(reversed(parts)))
    raise _Bad("expected a name (or alias.name)")


def _as_str(v: ast.Expr) -> ast.Str:
    if isinstance(v, ast.Str):
        return v
    raise _Bad("expected a string")


def _as_int(v: ast.Expr) -> ast.Int:
    if isinstance(v, ast.Int):
        return v
    raise _Bad("expected an integer")


def _as_bool(v: ast.Expr) -> ast.Bool:
    if isinstance(v, ast.Bool):
        return v
    raise _Bad("expected true or false")


def _as_name(v: ast.Expr) -> ast.Name:
    if isinstance(v, ast.Name):
        return v
    raise _Bad("expected a word")


def _as_record(v: ast.Expr) -> ast.RecordExpr:
    if isinstance(v, ast.RecordExpr):
        return v
    raise _Bad("expected a record { key: value, ... }")


def _as_refs(v: ast.Expr) -> tuple[ast.Ref, ...]:
    if isinstance(v, ast.ListExpr):
        return tuple(_as_ref(i) for i in v.items)
    raise _Bad("expected a list of names [a, b]")


def _as_bindings(v: ast.Expr) -> tuple[ast.HandlerBinding, ...]:
    if isinstance(v, ast.RecordExpr):
        return tuple(ast.HandlerBinding(e.span, e.key, _as_ref(e.value)) for e in v.entries)
    if isinstance(v, ast.ListExpr):
        out = []
        for item in v.items:
            ref = _as_ref(item)
            out.append(ast.HandlerBinding(item.span, ref.parts[-1], ref))
        return tuple(out)
    raise _Bad("expected { name: handler, ... } or [handler, ...]")


def _as_decoder(v: ast.Expr) -> ast.Expr:
    if isinstance(v, ast.Name):
        return v
    if (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and len(v.args) == 1
            and not v.kwargs and isinstance(v.args[0], ast.Int)):
        return v
    raise _Bad("expected sequential, interleaved or beam(N)")


def _as_trigger(v: ast.Expr) -> ast.Expr:
    if isinstance(v, (ast.Str, ast.Call)):
        return v
    raise _Bad('expected a regular expression r"..." or a call of a handler returning bool')


def _as_call(v: ast.Expr) -> ast.Call:
    if isinstance(v, ast.Call):
        return v
    raise _Bad("expected a call, e.g. handler(arg=value)")


def _as_expr(v: ast.Expr) -> ast.Expr:
    return v


Conv = Callable[[ast.Expr], Any]

# clause word -> (AST field, converter)
_COMMON: dict[str, tuple[str, Conv]] = {
    "model": ("model", _as_ref),
    "params": ("settings", _as_record),
}
SPECS: dict[str, dict[str, tuple[str, Conv]]] = {
    "prompt": {**_COMMON, "system": ("messages", _as_str), "user": ("messages", _as_str),
               "assistant": ("messages", _as_str), "demos": ("demos", _as_str),
               "retries": ("retries", _as_int), "hooks": ("hooks", _as_refs),
               "cache": ("cache", _as_bool)},
    "decompose": {**_COMMON, "handlers": ("handlers", _as_bindings), "prompt": ("prompt", _as_str),
                  "max_steps": ("max_steps", _as_int), "max_depth": ("max_depth", _as_int)},
    "route": {**_COMMON, "by": ("by", _as_name), "embed": ("embed", _as_ref)},
    "expert": {"instruction": ("instruction", _as_str), "demos": ("demos", _as_str),
               "model": ("model", _as_ref), "when": ("when", _as_expr)},
    "sketch": {**_COMMON, "decoder": ("decoder", _as_decoder), "template": ("template", _as_str),
               "retries": ("retries", _as_int)},
    "hook": {"when": ("when", _as_trigger), "if": ("if", _as_expr), "run": ("run", _as_call),
             "action": ("action", _as_name), "max_fires": ("max_fires", _as_int)},
}
_MESSAGE_ROLES = ("system", "user", "assistant")


def apply_clauses(cs: ClauseSet, diagnostics: list[Diagnostic]) -> dict[str, Any]:
    """Turn a clause list into AST fields; problems are appended to ``diagnostics``."""
    from .builder import suggest

    spec = SPECS[cs.kind]
    fields: dict[str, Any] = {}
    seen: dict[str, Any] = {}
    messages: list[ast.Message] = []
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
        field, conv = entry
        try:
            value = conv(cl.value)
        except _Bad as bad:
            diagnostics.append(error(cl.value.span, f"`{cl.word}` {bad}"))
            continue
        if cl.word in _MESSAGE_ROLES:
            messages.append(ast.Message(cl.span, cl.word, value))
            continue
        if cl.word in seen:
            diagnostics.append(error(cl.word_span, f"duplicate `{cl.word}` clause in {cs.kind} '{cs.owner}'"))
            continue
        seen[cl.word] = cl
        fields[field] = value
    if cs.kind == "prompt":
        fields["messages"] = tuple(messages)
    return fields
