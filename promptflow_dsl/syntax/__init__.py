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
    from lark.exceptions import VisitError

    from .builder import MAX_DEPTH

    builder = Builder(source.uri)
    try:
        module = builder.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, DepthExceeded):
            return None, [error(exc.orig_exc.span,
                                f"expression or type nested more than {MAX_DEPTH} levels deep")]
        raise exc.orig_exc from None
    return module, builder.diagnostics
