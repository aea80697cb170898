"""The Jinja2 environment of ``.pflow`` templates, shared by the checker (which parses
templates) and the runtime (which renders them): sandboxed, ``StrictUndefined``,
``trim_blocks``, ``lstrip_blocks``, no autoescaping, trailing newlines kept.  Jinja2
is imported on first use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..syntax import ast

__all__ = ["template_env", "locate"]


@lru_cache(maxsize=1)
def template_env() -> Any:
    """The sandboxed Jinja2 environment shared by checker and runtime."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                autoescape=False, keep_trailing_newline=True)


def locate(node: ast.Str, text: str, offset: int) -> tuple[int, int]:
    """Source (line, col) of character ``offset`` of ``text`` (the value of ``node``)."""
    before = text[:offset]
    line_index = before.count("\n")
    col_index = offset - (before.rfind("\n") + 1)
    return node.origin(line_index, col_index)
