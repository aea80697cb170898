"""The ``pflow`` command line: a thin layer over the library.

One module per command (``check``, ``graph``, ``run``, ``evals`` for ``eval``,
``cache``, ``test``, ``trace``, ``optimize``, ``route``, ``lsp``, ``fmt``), each with ``add_parser(sub)`` and its
``cmd_*`` function; ``common`` holds what they share.  Command modules import
the stages they need inside their functions, so ``pflow check`` never loads the
planner, the runtime or a model library.

Exit status: 0 success; 1 a run or test failed; 2 a user error in the program
or on the command line; 70 an internal error (a bug in pflow, reported in one
line).  No input ever produces a Python traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from .. import __version__
from . import cache, check, estimate, evals, fmt, graph, lsp, optimize, route, run, test, trace
from .common import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, Parser, UsageError

__all__ = ["main", "entry", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="pflow", description="Check, plan and run .pflow prompt programs.",
               epilog="Exit status: 0 ok, 1 run/test failed, 2 error in the program or "
                      "command line, 70 internal error.")
    p.add_argument("--version", action="version", version=f"pflow {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in (check, graph, run, evals, estimate, cache, test, trace, optimize, route,
                    lsp, fmt):
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (never raises, except SystemExit from --help)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # for resume commands
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args))
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        if exc.errno not in _PATH_ERRNOS:
            return _internal(exc)
        name = exc.filename if isinstance(exc.filename, str) else ""
        shown = name if len(name) <= 120 else name[:60] + "…" + name[-20:]
        print(f"pflow: {shown + ': ' if shown else ''}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the one place internal errors are reported
        return _internal(exc)


# a path given on the command line that the system refuses: the user's error (exit 2)
_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                          errno.EACCES, errno.ELOOP, errno.EPERM})


def _internal(exc: BaseException) -> int:
    if os.environ.get("PFLOW_DEBUG"):
        raise exc
    print(f"pflow: internal error: {type(exc).__name__}: {exc} -- this is a bug in pflow; "
          f"set PFLOW_DEBUG=1 for the traceback", file=sys.stderr)
    return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())
