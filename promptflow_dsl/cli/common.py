"""What every command shares: exit statuses, usage errors, colour, diagnostics on
stderr, loading a program (through the library facade, ``promptflow_dsl.load``),
paths shown relative to the working folder, ``--model``.

Imported at start-up by every command: nothing here may import a stage beyond
``diagnostics`` at module level.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..diagnostics import CompileError, Diagnostic, mask_secrets, render

if TYPE_CHECKING:  # pragma: no cover
    from ..program import Program

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


class UsageError(Exception):
    """A mistake on the command line (exit status 2); the message is printed as it is."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def color(stream: object) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def print_diagnostics(diags: list[Diagnostic], sources: dict[str, str]) -> None:
    if diags:
        print(render(diags, sources, color=color(sys.stderr)), file=sys.stderr)


def warnings_hint(count: int, path: str | Path) -> None:
    """One line on stderr for the warnings ``pflow run`` and ``pflow test`` do not show."""
    if count:
        import shlex

        print(f"{count} warning{'s' if count != 1 else ''}; `pflow check {shlex.quote(str(path))}` "
              "shows them", file=sys.stderr)


def diag_json(d: Diagnostic) -> dict:
    return {"severity": d.severity.value, "message": mask_secrets(d.message), "file": d.span.file,
            "line": d.span.line, "col": d.span.col, "end_line": d.span.end_line,
            "end_col": d.span.end_col,
            "notes": [{"message": mask_secrets(m), "file": s.file, "line": s.line, "col": s.col}
                      for s, m in d.notes]}


def load_program(path: str, allow: list[str]) -> Program:
    """The program in ``path``; raises :class:`CompileError` or :class:`UsageError`."""
    from .. import load

    p = Path(path)
    if not p.exists():
        raise UsageError(f"pflow: no such file: {path}")
    if p.is_dir():
        raise UsageError(f"pflow: {path} is a folder; give a .pflow file")
    return load(p, allow_paths=tuple(allow))


def load_or_report(args: argparse.Namespace) -> Program | None:
    """``args.file`` loaded, or None after its diagnostics were printed (exit status 2)."""
    try:
        return load_program(args.file, args.allow_path)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, exc.sources)
        return None


def load_and_warn(args: argparse.Namespace) -> Program | None:
    """:func:`load_or_report`, then the program's warnings on stderr: printed with ``-v``,
    else counted in one line unless ``-q`` (``pflow run``, ``pflow eval``)."""
    program = load_or_report(args)
    if program is not None:
        if args.verbose:
            print_diagnostics(program.warnings, program.sources)
        elif not args.quiet:
            warnings_hint(len(program.warnings), args.file)
    return program


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def project_dir(args: argparse.Namespace) -> Path:
    from ..check.loader import find_project_root

    start = Path(args.project) if getattr(args, "project", None) else Path.cwd()
    return find_project_root(start if start.is_dir() else start.parent)


def parse_models(values: list[str] | None, label: str) -> dict[str, str]:
    """``--model ID`` (for ``default``) and ``--model NAME=ID``, as model overrides."""
    models: dict[str, str] = {}
    for m in values or []:
        name, eq, ident = m.partition("=")
        if eq:
            if not name or not ident:
                raise UsageError(f"{label}: --model takes ID or NAME=ID, got {m!r}")
            models[name] = ident
        else:
            models["default"] = m
    return models
