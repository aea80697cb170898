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
    from lark.exceptions import UnexpectedInput

    from .builder import MAX_DEPTH, Builder, DepthExceeded
    from .gc_pause import paused_gc
    from .parser import SyntaxFailure, get_parser, parse, with_text
    from .reducer import parse_and_build

    builder = Builder(source.uri)
    try:
        with with_text(source.text), paused_gc():
            module = parse_and_build(get_parser(), source.text, builder)
    except (UnexpectedInput, DepthExceeded) as exc:
        # the diagnostic of the first syntax error comes from the tree-building parse
        # (the examples of common mistakes are matched against its states); nesting
        # too deep is reported only for text that parses, as the whole text is read first
        try:
            parse(source)
        except SyntaxFailure as failure:
            return None, [failure.diagnostic]
        if not isinstance(exc, DepthExceeded):
            raise
        return None, [error(exc.span, f"expression or type nested more than {MAX_DEPTH} levels deep")]
    return module, builder.diagnostics
