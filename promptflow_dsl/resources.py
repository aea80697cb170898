"""Where the files that ship with the package live: the grammar and the stdlib.

In an installed wheel they are inside the package (``promptflow_dsl/grammar``,
``promptflow_dsl/stdlib``); in a source checkout (or an editable install) they
are the top-level ``grammar/`` and ``stdlib/`` folders beside the package.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"promptflow-dsl is installed without its '{name}' folder")


@lru_cache(maxsize=1)
def grammar_path() -> Path:
    """The path of ``pflow.lark``.  Raises ``FileNotFoundError`` on a broken install."""
    return _locate("grammar") / "pflow.lark"


@lru_cache(maxsize=1)
def stdlib_dir() -> Path:
    """The folder of the standard library modules (``std.*``)."""
    return _locate("stdlib")
