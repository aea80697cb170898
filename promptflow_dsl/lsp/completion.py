"""Completion: what may be written at the cursor.

* inside ``{{ }}``: the handler's parameters, or a record's fields after ``name.``;
* inside a sketch hole ``[name ...``: the hole options;
* after ``alias.``: the imported module's handlers, types and models; after ``x.`` in a
  flow or a test: the fields of ``x``'s record type;
* at the start of a line in a clause body: the clause words of that body (from the
  kinds registry); at the top level: the declaration keywords;
* after ``:`` or ``->``: type names; after ``model``: model names;
* elsewhere: handlers, built-in functions and the local variables in scope.

Texts that do not parse while the user types are read with the last analysis that did.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from ..check.builtins import BUILTINS
from ..check.env import SCALARS
from ..kinds.registry import KINDS
from ..syntax import ast
from ..syntax.clauses import specs
from .analysis import Analysis
from .context import dotted_before, open_hole, open_template, scan
from .describe import show_type, signature
from .index import names_of
from .positions import Lines
from .scope import enclosing_decl, fields, follow, locals_of, params

#: the options of a sketch hole, as inserted (``lang/holes.py`` parses them)
HOLE_OPTIONS: tuple[tuple[str, str], ...] = (
    ('stop="', 'stop="\\n": the value ends at this string'),
    ("stop=[", 'stop=["a", "b"]: the value ends at the first of these strings'),
    ("keep_stop", "keep the stop string at the end of the value"),
    ("min_chars=", "at least N characters (text and regex holes)"),
    ("max_chars=", "at most N characters (text and regex holes)"),
    ("in {", 'in {"a", "b"}: one of these choices'),
    (": int", "an integer"), (": float", "a number"), (": bool", "true or false"),
    (": str", "text (the default)"),
    ('regex=r"', "the value matches this regular expression"),
    ("max_tokens=", "at most N tokens"),
)

#: words that start a top-level declaration besides the handler kinds
DECLARATIONS = ("type", "model", "import", "hook", "test", "eval")

_K = lsp.CompletionItemKind


def _item(label: str, kind: lsp.CompletionItemKind, detail: str | None = None,
          insert: str | None = None) -> lsp.CompletionItem:
    return lsp.CompletionItem(label=label, kind=kind, detail=detail, insert_text=insert)


def complete(text: str, analysis: Analysis | None, pos: lsp.Position) -> list[lsp.CompletionItem]:
    lines = Lines(text)
    offset = lines.offset(pos.line, pos.character)
    line, col = lines.span_position(pos.line, pos.character)
    cursor = scan(text, offset)
    prefix = cursor.line_prefix
    module = analysis.entry.module if analysis is not None else None
    cm = analysis.checked(analysis.entry_key) if analysis is not None else None
    decl = enclosing_decl(module, line, col)
    dotted = dotted_before(prefix)

    if cursor.in_string:
        if open_template(text, offset) is not None:
            scope = params(decl, cm)
            if dotted is not None:
                root, *rest = dotted[0].split(".")
                return _fields(follow(scope.get(root), rest))
            return [_item(n, _K.Variable, t.show() if t is not None else None)
                    for n, t in scope.items()]
        if isinstance(decl, ast.HandlerDecl) and decl.kind == "sketch" and \
                open_hole(text, offset) is not None:
            return [_item(label, _K.Property, detail) for label, detail in HOLE_OPTIONS]
        return []

    if dotted is not None:
        root, *rest = dotted[0].split(".")
        if analysis is not None and not rest and root in analysis.entry.imports:
            return _module_names(analysis, analysis.entry.imports[root])
        return _fields(follow(locals_of(decl, cm).get(root), rest))

    if re.fullmatch(r"\s*\w*", prefix):
        block = cursor.blocks[-1] if cursor.blocks else None
        if block is None:
            return [_item(w, _K.Keyword) for w in (*KINDS, *DECLARATIONS)]
        body = specs().get(block)
        if body is not None:
            return [_item(w, _K.Keyword, f"{block} clause") for w in body]
    in_types = not cursor.blocks or cursor.blocks[-1] == "type"
    if re.search(r"(->|\blist\[|\bdict\[str,)\s*[\w.]*$", prefix) or \
            (in_types and re.search(r"[:|]\s*[\w.]*$", prefix)):
        return _types(analysis)
    if re.search(r"\bmodel\s*:?\s*\w*$", prefix):
        return _models(analysis)
    return _values(analysis, decl, cm)


def _fields(t) -> list[lsp.CompletionItem]:  # noqa: ANN001 - a Type or None
    return [_item(n, _K.Field, ft.show()) for n, ft in fields(t)]


def _module_names(analysis: Analysis, key: str) -> list[lsp.CompletionItem]:
    lm = analysis.load.modules.get(key)
    if lm is None:
        return []
    cm = analysis.checked(key)
    names = names_of(lm.module)
    out = [_item(n, _K.Function, signature(d, cm) if isinstance(d, ast.HandlerDecl) else None)
           for n, d in names.get("handler", {}).items()]
    out += [_item(n, _K.Struct, "type") for n in names.get("type", {})]
    out += [_item(n, _K.Constant, "model") for n in names.get("model", {})]
    out += [_item(n, _K.Event, "hook") for n in names.get("hook", {})]
    return out


def _types(analysis: Analysis | None) -> list[lsp.CompletionItem]:
    out = [_item(n, _K.TypeParameter, "built-in type") for n in SCALARS]
    if analysis is None:
        return out
    cm = analysis.checked(analysis.entry_key)
    for n in names_of(analysis.entry.module).get("type", {}):
        out.append(_item(n, _K.Struct, show_type(n, cm.types.get(n) if cm else None)))
    for alias, key in analysis.entry.imports.items():
        lm = analysis.load.modules.get(key)
        for n in names_of(lm.module if lm else None).get("type", {}):
            out.append(_item(f"{alias}.{n}", _K.Struct, "type"))
    return out


def _models(analysis: Analysis | None) -> list[lsp.CompletionItem]:
    if analysis is None:
        return []
    out = []
    for n, d in names_of(analysis.entry.module).get("model", {}).items():
        mid = d.model_id.value if isinstance(d, ast.ModelDecl) else None
        out.append(_item(n, _K.Constant, mid))
    return out


def _values(analysis: Analysis | None, decl: ast.Decl | None, cm) -> list[lsp.CompletionItem]:  # noqa: ANN001
    out = [_item(n, _K.Variable, t.show() if t is not None else None)
           for n, t in locals_of(decl, cm).items()]
    if analysis is not None:
        names = names_of(analysis.entry.module)
        for n, d in names.get("handler", {}).items():
            detail = signature(d, cm) if isinstance(d, ast.HandlerDecl) else None
            out.append(_item(n, _K.Function, detail))
        out += [_item(n, _K.Event, "hook") for n in names.get("hook", {})]
        out += [_item(n, _K.Module, "import") for n in names.get("import", {})]
    out += [_item(n, _K.Function, b.doc) for n, b in BUILTINS.items()]
    if getattr(decl, "kind", None) == "flow":
        out.append(_item("return", _K.Keyword))
    return out
