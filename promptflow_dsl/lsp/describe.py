"""Markdown descriptions of symbols (hover texts, completion details)."""

from __future__ import annotations

import json

from ..check.program import CheckedModule
from ..lang.types import RecordType, Type
from ..syntax import ast
from .analysis import Analysis
from .context import doc_comment
from .index import HANDLER, HOOK, IMPORT, MODEL, TYPE, Symbol, find_decl


def code(text: str) -> str:
    return f"```pflow\n{text}\n```"


def show_type(name: str, t: Type | None) -> str:
    if isinstance(t, RecordType):
        lines = [f"  {f.name}: {f.type.show()}" for f in t.fields]
        return f"type {name} = {{\n" + ",\n".join(lines) + "\n}"
    return f"type {name} = {t.show() if t is not None else '?'}"


def signature(decl: ast.HandlerDecl, cm: CheckedModule | None) -> str:
    info = cm.handlers.get(decl.name) if cm is not None else None
    if info is not None:
        return f"{decl.kind} {info.signature.show(decl.name)}"
    ps = ", ".join(p.name for p in decl.params)
    return f"{decl.kind} {decl.name}({ps})"


def module_text(analysis: Analysis, key: str) -> str:
    lm = analysis.load.modules.get(key)
    return lm.source.text if lm is not None else ""


def describe(analysis: Analysis, symbol: Symbol) -> str | None:
    """The hover text of ``symbol``: its declaration's head, what the checker knows of it
    and the comment lines right above it."""
    lm = analysis.load.modules.get(symbol.module)
    if lm is None:
        return None
    decl = find_decl(lm.module, symbol)
    if decl is None:
        return None
    cm = analysis.checked(symbol.module)
    head = _head(decl, symbol, cm, lm.source.uri)
    comment = doc_comment(lm.source.text, decl.span.line)
    parts = [code(head)]
    if comment:
        parts.append(comment)
    if symbol.module != analysis.entry_key:
        parts.append(f"*from {lm.std_name or lm.source.uri}*")
    return "\n\n".join(parts)


def _head(decl: ast.Decl, symbol: Symbol, cm: CheckedModule | None, uri: str) -> str:
    if symbol.space == HANDLER and isinstance(decl, ast.HandlerDecl):
        return signature(decl, cm)
    if symbol.space == TYPE:
        return show_type(decl.name, cm.types.get(decl.name) if cm is not None else None)
    if symbol.space == MODEL and isinstance(decl, ast.ModelDecl):
        info = cm.models.get(decl.name) if cm is not None else None
        params = info.params if info is not None else {}
        shown = {k: ("***" if "api_key" in k else v) for k, v in params.items()}
        text = f"model {decl.name} = {json.dumps(decl.model_id.value)}"
        if shown:
            text += " " + json.dumps(shown, default=str)
        return text
    if symbol.space == HOOK:
        hook = cm.hooks.get(decl.name) if cm is not None else None
        extra = f"  # action {hook.action}, max_fires {hook.max_fires}" if hook else ""
        return f"hook {decl.name}{extra}"
    if symbol.space == IMPORT and isinstance(decl, ast.ImportDecl):
        what = decl.module if decl.module else json.dumps(decl.path.value if decl.path else "")
        return f"import {what} as {decl.name}"
    return f"{symbol.space} {decl.name}"
