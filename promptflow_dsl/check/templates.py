"""Jinja2 templates checked at compile time.

Templates are parsed (never rendered) in the same sandboxed environment the
runtime uses (:func:`promptflow_dsl.lang.templates.template_env`).  Syntax errors
and every variable a template reads that is not in scope are reported at their
line (and, for variables, column) in the ``.pflow`` file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..diagnostics import Diagnostic, Span, error
from ..lang.holes import line_starts
from ..lang.templates import locate, template_env
from ..syntax import ast
from ..syntax.builder import suggest


def _span_at(node: ast.Str, text: str, offset: int, length: int) -> Span:
    line, col = locate(node, text, offset)
    return Span.point(node.span.file, line, col, length)


def _line_offset(text: str, lineno: int) -> int:
    """Offset of the first character of 1-based line ``lineno`` of ``text`` (the start of
    its last line when there are fewer lines)."""
    starts = line_starts(text)
    return starts[min(max(lineno - 1, 0), len(starts) - 1)]


_NO_FILTER = re.compile(r"No (filter|test) named '([^']+)'")
_OPEN_BLOCK = re.compile(r"innermost block that needs to be closed is '(\w+)'")


def _find_word(text: str, line_start: int, word: str) -> int:
    end = text.find("\n", line_start)
    line_text = text[line_start: end if end >= 0 else len(text)]
    m = re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", line_text)
    return line_start + (m.start() if m else 0)


def _explain_syntax_error(exc: Any, text: str) -> tuple[int, int, str]:
    """(offset, length, message) for a Jinja ``TemplateSyntaxError`` in ``text``."""
    env = template_env()
    msg = (exc.message or "template syntax error").strip()
    line_start = _line_offset(text, exc.lineno or 1)
    m = _NO_FILTER.search(msg)
    if m:
        kind, name = m.groups()
        options = sorted(env.filters if kind == "filter" else env.tests)
        return (_find_word(text, line_start, name), len(name),
                f"unknown {kind} '{name}'{suggest(name, options)}")
    m = _OPEN_BLOCK.search(msg)
    if m:
        tag = m.group(1)
        opens = [o.start() for o in re.finditer(rf"{{%-?\s*{tag}\b", text)]
        if opens:
            return opens[-1], 2, f"'{{% {tag} %}}' is never closed with '{{% end{tag} %}}'"
    return line_start, 1, msg


@dataclass(frozen=True)
class _Analysis:
    """What checking a template text finds, whatever its place and scope: the names it
    reads that are not Jinja globals, or the problem that stopped it (offset in the
    text or ``None`` for the whole template, length, message)."""

    names: frozenset[str] = frozenset()
    problem: tuple[int | None, int, str] | None = None


def _first_lines(text: str, wanted: frozenset[str]) -> dict[str, int]:
    """The line of the first place the template ``text`` (which parses) reads each of
    ``wanted``, in the order they are first read."""
    from jinja2 import nodes

    out: dict[str, int] = {}
    for n in template_env().parse(text).find_all(nodes.Name):
        if n.name in wanted and n.ctx == "load":
            out.setdefault(n.name, n.lineno)
    return out


#: texts up to this many characters are cached (a few thousand of them at most)
_CACHED_CHARS = 1 << 16


def _analyse(text: str) -> _Analysis:
    """What :func:`_analysed` finds, cached by text for texts of a usual size (a pure
    function of the text: the environment is fixed).  Never raises."""
    return _analysed_cached(text) if len(text) <= _CACHED_CHARS else _analysed(text)


def _analysed(text: str) -> _Analysis:
    """The template ``text`` parsed and code-generated once.  Never raises."""
    from jinja2 import TemplateSyntaxError, meta

    env = template_env()
    try:
        tree = env.parse(text)
        # one code-generation pass finds the names the template reads and fails on
        # unknown filters and tests (what ``env.compile`` would report), so the
        # template is not compiled a second time here
        undeclared = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as exc:
        return _Analysis(problem=_explain_syntax_error(exc, text))
    except Exception as exc:  # Jinja's compiler may raise other errors for odd input
        return _Analysis(problem=(None, 0, str(exc)))
    return _Analysis(frozenset(undeclared - set(env.globals)))


_analysed_cached = lru_cache(maxsize=4096)(_analysed)


def check_template(node: ast.Str, allowed: set[str], where: str,
                   piece: str | None = None, piece_offset: int = 0
                   ) -> tuple[frozenset[str], list[Diagnostic]]:
    """Check the template in ``node`` (or the ``piece`` of it starting at ``piece_offset``).

    Returns the set of variables the template reads and the diagnostics found:
    a syntax error, or each variable not in ``allowed`` (Jinja's own globals and
    the template's local names are always allowed).  Never raises.
    """
    full = node.value
    text = full if piece is None else piece
    found = _analyse(text)
    if found.problem is not None:
        off, length, msg = found.problem
        if off is None:
            return frozenset(), [error(node.span, f"template error in {where}: {msg}")]
        return frozenset(), [error(_span_at(node, full, piece_offset + off, length),
                                   f"template error in {where}: {msg}")]
    names = found.names
    diags: list[Diagnostic] = []
    unknown = names - allowed
    # an unknown name is rare: the text is parsed again to locate it (the cache keeps
    # no trees)
    for name, lineno in (_first_lines(text, unknown) if unknown else {}).items():
        line_start = _line_offset(text, lineno)
        line_end = text.find("\n", line_start)
        line_text = text[line_start: line_end if line_end >= 0 else len(text)]
        m = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", line_text)
        col = m.start() if m else 0
        span = _span_at(node, full, piece_offset + line_start + col, len(name))
        scope = ", ".join(sorted(allowed)) or "none"
        hint = suggest(name, sorted(allowed))
        diags.append(error(span, f"unknown variable '{name}' in {where}{hint} "
                                 f"(in scope: {scope})"))
    return names, diags
