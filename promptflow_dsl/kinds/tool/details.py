"""What the checker records about a ``tool`` (check stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...check.program import Details


@dataclass(frozen=True, kw_only=True)
class ToolDetails(Details):
    target: str  # "module:function" or "file_stem:function", as written
    module_file: str | None = None  # the Python file beside the .pflow file, when there is one
