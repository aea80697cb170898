"""Stage check: AST modules (and their imports) → CheckedProgram (see README.md)."""

from __future__ import annotations

from pathlib import Path

from ..diagnostics import CompileError, Diagnostic
from ..syntax import SourceFile, read_source
from ..syntax.source import read_regular
from .checker import check_loaded, project_for
from .loader import Project, load
from .program import CheckedModule, CheckedProgram, HandlerInfo, HookInfo, Signature, TestInfo

__all__ = ["check_source", "check_file", "CheckedProgram", "CheckedModule", "HandlerInfo",
           "HookInfo", "Signature", "TestInfo", "Project"]


def check_source(source: SourceFile, project: Project) -> tuple[CheckedProgram | None, list[Diagnostic]]:
    """Load, parse and check ``source`` and its imports; never raises for user errors."""
    result = load(source, project)
    return check_loaded(result, project)


def check_file(path: Path, allow: tuple[Path, ...] = ()) -> CheckedProgram:
    """Check the program in ``path``.

    Raises :class:`CompileError` with every diagnostic when there is any error.
    """
    source, diag = read_source(path)
    if source is None:
        assert diag is not None
        try:  # show the undecodable line with replacement characters
            shown = {diag.span.file: read_regular(path).decode("utf-8", errors="replace")}
        except (OSError, ValueError):  # missing, a FIFO or a device: nothing to show
            shown = {}
        raise CompileError([diag], shown)
    program, diags = check_source(source, project_for(path, allow))
    if program is None or any(d.is_error for d in diags):
        sources = dict(program.sources) if program else {}
        sources.setdefault(source.uri, source.text)
        raise CompileError(diags, sources)
    return program
