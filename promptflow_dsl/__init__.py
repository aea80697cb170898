"""promptflow-dsl: write, check and run modular LLM prompt programs (``.pflow`` files).

The library API::

    import promptflow_dsl as pf

    program = pf.load("triage.pflow")          # parse + check, or raise pf.CompileError
    program.handlers["classify"].signature      # typed signatures of every handler
    plan = program.plan("triage")               # the networkx DAG of one handler
    result = program.run("triage", review="...")  # .value, .trace (or await program.arun)

Importing this package is cheap: Lark, Jinja2, pydantic and networkx are
imported only by the stage that needs them, and litellm only when a real model
is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnostics import CompileError, Diagnostic, Severity, Span, render

if TYPE_CHECKING:  # pragma: no cover
    from .check.program import CheckedProgram
    from .program import Program

__version__ = "0.1.0"
__all__ = ["CompileError", "Diagnostic", "Severity", "Span", "render", "load", "loads",
           "Program", "CheckedProgram", "__version__"]


def __getattr__(name: str) -> Any:
    """``Program`` and ``CheckedProgram``, imported on first use (they load the checker)."""
    if name == "Program":
        from .program import Program

        return Program
    if name == "CheckedProgram":
        from .check.program import CheckedProgram

        return CheckedProgram
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path: str | Path, *, allow_paths: tuple[str | Path, ...] = ()) -> Program:
    """Load, parse and check the program in ``path`` and every module it imports.

    ``allow_paths`` lists extra folders (outside the project root) the program may
    read files from.  Returns a :class:`~promptflow_dsl.program.Program` (a checked
    program with ``plan``, ``run`` and ``arun``).
    Raises :class:`CompileError` (carrying every diagnostic, sorted) if the file
    cannot be read or the program has any error.
    """
    from .check import check_file
    from .program import Program

    return Program.of(check_file(Path(path), tuple(Path(p) for p in allow_paths)))


def loads(text: str, *, name: str = "<string>", base_dir: str | Path | None = None,
          allow_paths: tuple[str | Path, ...] = ()) -> Program:
    """Check program ``text`` as if it were a file called ``name`` in ``base_dir``.

    Relative imports, prompt files and demos resolve against ``base_dir`` (default:
    the current directory).  Raises :class:`CompileError` on any error.
    """
    from .check import check_source
    from .check.checker import project_for
    from .program import Program
    from .syntax.source import SourceFile, normalize

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    path = base / name if name != "<string>" else None
    source = SourceFile(name, normalize(text), path)
    project = project_for(path, tuple(Path(p) for p in allow_paths),
                          root=None if path is not None else base)
    program, diags = check_source(source, project)
    if program is None or any(d.is_error for d in diags):
        sources = dict(program.sources) if program else {}
        sources.setdefault(name, source.text)
        raise CompileError(diags, sources)
    return Program.of(program)
