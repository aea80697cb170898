"""Checking with the imported modules of earlier checks reused.

:class:`ModuleCheckCache` keeps checked imported modules, least recently used dropped
past its size, for ``check.checker.check_loaded``'s ``reuse``: an imported module whose
text, imports (transitively) and project are those of an earlier check is not checked
again (see ``check.checker.module_stamp``).  The entry module is always checked.  Files
a module reads besides ``.pflow`` files (prompt files, demos, data) are not part of the
key: the server clears the cache when a file is saved.
"""

from __future__ import annotations

from collections import OrderedDict

from ..check.program import CheckedModule
from ..diagnostics import Diagnostic


class ModuleCheckCache:
    """Checked imported modules by their stamp (a digest of their text, imports and
    project); implements ``check.checker.CheckedModules``."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.entries: OrderedDict[str, tuple[CheckedModule, list[Diagnostic]]] = OrderedDict()

    def get(self, stamp: str) -> tuple[CheckedModule, list[Diagnostic]] | None:
        found = self.entries.get(stamp)
        if found is not None:
            self.entries.move_to_end(stamp)
        return found

    def put(self, stamp: str, value: tuple[CheckedModule, list[Diagnostic]]) -> None:
        self.entries[stamp] = value
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()

