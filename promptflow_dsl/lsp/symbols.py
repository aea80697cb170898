"""Document symbols: the declarations of a module, with a record type's fields and a
route's experts as children."""

from __future__ import annotations

from lsprotocol import types as lsp

from ..syntax import ast
from .analysis import Analysis
from .convert import Ranges
from .describe import signature

_KINDS = {"handler": lsp.SymbolKind.Function, "hook": lsp.SymbolKind.Event,
          "type": lsp.SymbolKind.Struct, "model": lsp.SymbolKind.Constant,
          "import": lsp.SymbolKind.Module, "eval": lsp.SymbolKind.Class,
          "test": lsp.SymbolKind.Method}


def document_symbols(analysis: Analysis, ranges: Ranges) -> list[lsp.DocumentSymbol]:
    module = analysis.entry.module
    if module is None:
        return []
    cm = analysis.checked(analysis.entry_key)
    out = []
    for decl in module.decls:
        children: list[lsp.DocumentSymbol] = []
        detail = None
        if isinstance(decl, ast.HandlerDecl):
            space = "handler"
            detail = signature(decl, cm)
            for expert in getattr(decl, "experts", ()):
                children.append(lsp.DocumentSymbol(
                    expert.name, lsp.SymbolKind.EnumMember, ranges.range(expert.span),
                    ranges.range(expert.name_span), detail="expert"))
        elif isinstance(decl, ast.HookDecl):
            space = "hook"
        elif isinstance(decl, ast.TypeDecl):
            space = "type"
            if isinstance(decl.type, ast.RecordType):
                for f in decl.type.fields:
                    children.append(lsp.DocumentSymbol(
                        f.name, lsp.SymbolKind.Field, ranges.range(f.span),
                        ranges.range(f.span)))
        elif isinstance(decl, ast.ModelDecl):
            space, detail = "model", decl.model_id.value
        elif isinstance(decl, ast.ImportDecl):
            space = "import"
        elif isinstance(decl, ast.EvalDecl):
            space = "eval"
        elif isinstance(decl, ast.TestDecl):
            space = "test"
        else:
            continue
        name = decl.name or "?"
        out.append(lsp.DocumentSymbol(name, _KINDS[space], ranges.range(decl.span),
                                      ranges.range(decl.name_span), detail=detail,
                                      children=children or None))
    return out
