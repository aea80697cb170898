"""``pflow lsp``: the language server for editors, over stdin/stdout.

It needs the ``lsp`` extra (pygls and lsprotocol); without it the command says how to
install it and exits 2.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from .common import EXIT_OK, UsageError

INSTALL_HINT = "pip install 'promptflow-dsl[lsp]'"


def cmd_lsp(args: argparse.Namespace) -> int:
    missing = [m for m in ("pygls", "lsprotocol") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"pflow lsp: the language server needs {' and '.join(missing)}; "
                         f"install them with: {INSTALL_HINT}")
    from ..lsp.server import serve

    serve()
    return EXIT_OK


def add_parser(sub: Any) -> None:
    c = sub.add_parser("lsp", help="the language server for editors (stdio)",
                       description="Run the pflow language server on stdin/stdout: "
                                   "diagnostics, hover, go to definition, references, "
                                   "completion, document symbols, rename and formatting "
                                   "(pflow fmt's layout) for .pflow files. Editors start "
                                   "it; see docs/editors.md.")
    c.add_argument("--stdio", action="store_true",
                   help="talk over stdin/stdout (the default and only transport; accepted "
                        "because many editors pass it)")
    c.set_defaults(func=cmd_lsp)
