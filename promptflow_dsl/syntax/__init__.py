"""Stages load, parse and build: source text → typed AST (see README.md)."""

from __future__ import annotations

from ..diagnostics import Diagnostic, error
from . import ast
from .source import SourceFile, normalize, read_source

__all__ = ["ast", "SourceFile", "normalize", "read_source", "parse_module"]


def parse_module(source: SourceFile) -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse and build one source file.

    Returns the module (``None`` when the text does not parse) and the syntax and
    structural diagnostics found.  Never raises for any input text.
    """
    from .builder import Builder, DepthExceeded
    from .parser import SyntaxFailure, parse

    try:
        tree = parse(source)
    except SyntaxFailure as exc:
        return None, [exc.diagnostic]
    builder = Builder(source.uri)
    try:
        module = builder.transform(tree)
    except DepthExceeded as exc:
        from .builder import MAX_DEPTH

        return None, [error(exc.span, f"expression or type nested more than {MAX_DEPTH} levels deep")]
    return module, builder.diagnostics
