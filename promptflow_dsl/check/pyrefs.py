"""Static resolution of a tool's Python target, ``"module:function"``, without running it.

A module file beside the ``.pflow`` file (``module.py``, or ``pkg/mod.py`` for
``pkg.mod``) wins; otherwise the module is looked up on the Python path with
``importlib.machinery.PathFinder`` — which finds files but executes nothing.
When the module is Python source, it is parsed and the function must be defined
at its top level (``def``, ``async def``, an assignment or an import of that
name).  Compiled or built-in modules are accepted as found.
"""

from __future__ import annotations

import ast as pyast
import importlib.machinery
import sys
from pathlib import Path

from ..diagnostics import Diagnostic, Span, error
from ..syntax.source import FileTooLarge, read_regular, shown_path


def _top_level_names(source: str) -> set[str] | None:
    """Names defined at the top of a module; None when a star import hides them.

    Raises ``SyntaxError`` for source Python cannot parse.
    """
    tree = pyast.parse(source)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (pyast.FunctionDef, pyast.AsyncFunctionDef, pyast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (pyast.Assign, pyast.AnnAssign)):
            targets = node.targets if isinstance(node, pyast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, pyast.Name):
                    names.add(t.id)
        elif isinstance(node, (pyast.Import, pyast.ImportFrom)):
            for a in node.names:
                if a.name == "*":
                    return None  # `from x import *`: the names cannot be known statically
                names.add((a.asname or a.name).split(".")[0])
    return names


def _find_on_path(module: str) -> str | None:
    """The origin of ``module`` on sys.path (a file path, or "built-in"); None if absent."""
    if module in sys.builtin_module_names:
        return "built-in"
    path = None
    spec = None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        path = list(spec.submodule_search_locations or [])
        if i < len(parts) - 1 and not path:
            return None
    if spec is None:
        return None
    return spec.origin or "namespace"


def locate_module(module: str, pflow_path: Path | None) -> str | None:
    """Where module ``module`` would be loaded from for a tool declared in ``pflow_path``.

    Raises ``OSError`` when the file system refuses a candidate path (a name too long).
    """
    if pflow_path is not None:
        rel = Path(*module.split("."))
        for cand in (pflow_path.parent / rel.with_suffix(".py"), pflow_path.parent / rel / "__init__.py"):
            if cand.is_file():
                return str(cand)
    return _find_on_path(module)


#: the largest Python module the checker parses to find a tool's function
MAX_MODULE_BYTES = 8 * 1024 * 1024


def _module_names(module: str, where: str) -> tuple[set[str] | None, str | None]:
    """The top-level names of the Python source file ``where`` (``None``: hidden by a star
    import), or why they cannot be known: unreadable, not a regular file, too large, not
    UTF-8, or source Python cannot parse (a syntax error, a NUL byte, nesting so deep
    that the parser runs out of memory or recursion).  Never raises."""
    try:
        data = read_regular(where, MAX_MODULE_BYTES)
    except FileTooLarge:
        return None, (f"Python module '{module}' is too large to check (more than "
                      f"{MAX_MODULE_BYTES // (1024 * 1024)} MB)")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, f"cannot read Python module '{module}': {reason}"
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"cannot read Python module '{module}': not UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        return _top_level_names(source), None
    except SyntaxError as exc:
        return None, f"Python module '{module}' has a syntax error (line {exc.lineno}): {exc.msg}"
    except ValueError as exc:  # a NUL byte, on Pythons that do not call it a syntax error
        return None, f"Python module '{module}' cannot be parsed: {exc}"
    except (MemoryError, RecursionError):
        return None, f"Python module '{module}' cannot be parsed: it is nested too deeply"


def check_python_target(target: str, pflow_path: Path | None, span: Span
                        ) -> tuple[Diagnostic | None, str | None]:
    """Check that ``module:function`` exists without importing the module.

    Returns ``(diagnostic or None, where the module was found or None)``.
    """
    module, sep, func = target.partition(":")
    if not sep or not module or not func:
        return error(span, f"tool target '{shown_path(target)}' must be \"module:function\""), None
    if not all(p.isidentifier() for p in module.split(".")):
        return error(span, f"'{shown_path(module)}' is not a Python module name"), None
    if not all(p.isidentifier() for p in func.split(".")):
        return error(span, f"'{shown_path(func)}' is not a Python function name"), None
    try:
        where = locate_module(module, pflow_path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return error(span, f"cannot look for Python module '{shown_path(module)}': {reason}"), None
    if where is None:
        return error(span, f"cannot find Python module '{shown_path(module)}' (looked for "
                           f"{shown_path(module.replace('.', '/'))}.py "
                           f"beside this file and on the Python path)"), None
    if where.endswith(".py"):
        names, problem = _module_names(module, where)
        if problem is not None:
            return error(span, problem), where
        head = func.split(".")[0]
        if names is not None and head not in names:
            from ..syntax.builder import suggest

            public = [n for n in names if not n.startswith("_")]
            return error(span, f"Python module '{module}' has no function '{head}'"
                               f"{suggest(head, public)}"), where
    return None, where
