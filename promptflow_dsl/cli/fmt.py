"""``pflow fmt``: rewrite ``.pflow`` files in the canonical layout.

Files that already have it are never written; a changed file is written atomically
(a temporary file in the same folder, then a rename over the original, keeping its
permission bits).  ``--check`` and ``--diff`` write nothing.  A file that does not
parse is left untouched and its located syntax error printed (exit 2).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from .common import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, print_diagnostics


def cmd_fmt(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for target in args.paths:
        for path in _files(target):
            status = max(status, _one(path, args), key=_severity)
    return status


def _severity(status: int) -> int:
    return {EXIT_OK: 0, EXIT_FAILED: 1, EXIT_USAGE: 2, EXIT_INTERNAL: 3}[status]


def _files(target: str) -> list[str]:
    """``-`` (stdin), the file itself, or every ``*.pflow`` under a folder (sorted;
    folders whose name starts with ``.`` are skipped)."""
    if target != "-" and Path(target).is_dir():
        found = []
        for folder, dirs, names in os.walk(target):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".pflow")]
        return found
    return [target]


def _one(path: str, args: argparse.Namespace) -> int:
    """Format one file (or stdin for ``-``); returns its exit status."""
    from ..fmt import FormatterBug, NotParsed, format_text
    from ..syntax.source import decode, display_name, read_source

    shown = "<stdin>" if path == "-" else display_name(Path(path))
    if path == "-":
        data = sys.stdin.buffer.read()
        text, diag = decode(data, shown)
    else:
        source, diag = read_source(Path(path), shown)
        text = source.text if source is not None else None
        data = Path(path).read_bytes() if source is not None else b""
    if text is None:
        assert diag is not None
        print_diagnostics([diag], {})
        return EXIT_USAGE
    try:
        result = format_text(text, shown)
    except NotParsed as exc:
        print_diagnostics([exc.diagnostic], {shown: text})
        return EXIT_USAGE
    except FormatterBug as exc:
        print(f"pflow fmt: {shown}: internal error: {exc} -- this is a bug in pflow; the "
              f"file is left as it is", file=sys.stderr)
        return EXIT_INTERNAL
    changed = result.encode("utf-8") != data
    if args.diff and changed:
        sys.stdout.writelines(difflib.unified_diff(
            text.splitlines(keepends=True), result.splitlines(keepends=True),
            f"{shown} (original)", f"{shown} (formatted)"))
    if args.check or args.diff:
        if changed and args.check:
            print(f"would reformat {shown}")
        return EXIT_FAILED if changed and args.check else EXIT_OK
    if path == "-":
        sys.stdout.write(result)
    elif changed:
        try:
            write_atomically(Path(path), result)
        except OSError as exc:
            print(f"pflow fmt: {shown}: cannot write: {exc.strerror or exc}; the file is left "
                  f"as it is", file=sys.stderr)
            return EXIT_USAGE
        print(f"reformatted {shown}", file=sys.stderr)
    return EXIT_OK


def write_atomically(path: Path, text: str) -> None:
    """Replace the file ``path`` (a symbolic link's target) with ``text``: a temporary
    file in the same folder, renamed over it, with the original's permission bits.

    Raises ``OSError`` when the folder cannot be written (the file is then unchanged).
    """
    target = Path(os.path.realpath(path))
    write_atomic(target, text.encode("utf-8"), durable=True,
                 mode=target.stat().st_mode & 0o7777)


def add_parser(sub: Any) -> None:
    c = sub.add_parser("fmt", help="rewrite .pflow files in the canonical layout",
                       description="Rewrite .pflow files in the canonical layout: indentation, "
                                   "spacing, one clause or statement per line, blank lines. "
                                   "Comments and the text of every string are kept exactly. "
                                   "A folder formats every *.pflow under it; - reads stdin and "
                                   "writes the result to stdout.")
    c.add_argument("paths", nargs="+", metavar="PATH", help="a .pflow file, a folder, or -")
    c.add_argument("--check", action="store_true",
                   help="write nothing; list the files that would change and exit 1 if any")
    c.add_argument("--diff", action="store_true",
                   help="write nothing; print a unified diff of the changes")
    c.set_defaults(func=cmd_fmt)
