"""Checking with the imported modules of earlier checks reused.

:func:`check_reusing` does what ``check.checker.check_loaded`` does, module by module
in the same order with the same functions, except that an imported module whose text,
imports (transitively) and project are those of an earlier check is not checked again:
its ``CheckedModule`` and the diagnostics its check reported come from a
:class:`ModuleCheckCache`.  The entry module is always checked.  Files a module reads
besides ``.pflow`` files (prompt files, demos, data) are not part of the key: the
server clears the cache when a file is saved.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from ..check.checker import _check_module, _check_recursion
from ..check.env import ModuleEnv
from ..check.evals import data_sources
from ..check.loader import LoadResult, Project
from ..check.program import CheckedModule, CheckedProgram
from ..diagnostics import Diagnostic, Span, error


class ModuleCheckCache:
    """Checked imported modules by a digest of their text, imports and project."""

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


def check_reusing(result: LoadResult, project: Project, cache: ModuleCheckCache
                  ) -> tuple[CheckedProgram | None, list[Diagnostic]]:
    """``check_loaded(result, project)``, imported modules reused from ``cache``.
    Never raises for user errors."""
    diags = list(result.diagnostics)
    checked: dict[str, CheckedModule] = {}
    stamps: dict[str, str] = {}
    base = f"{project.root}|{'|'.join(map(str, project.allowed))}"
    for key in result.order:
        lm = result.modules[key]
        h = hashlib.blake2b(digest_size=16)
        for part in (base, key, lm.source.uri, lm.source.text,
                     *sorted(f"{a}={stamps.get(k, k)}" for a, k in lm.imports.items())):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
        stamps[key] = stamp = h.hexdigest()
        if lm.module is None:
            continue
        found = cache.get(stamp) if key != result.entry else None
        if found is not None:
            checked[key] = found[0]
            diags.extend(found[1])
            continue
        before = len(diags)
        env = ModuleEnv(lm, checked, project, diags)
        try:
            _check_module(env)
        except RecursionError:
            diags.append(error(Span.point(lm.source.uri, 1, 1),
                               "program is nested too deeply to check"))
        checked[key] = env.cm
        if key != result.entry:
            cache.put(stamp, (env.cm, diags[before:]))
    if result.entry not in checked:
        return None, diags
    _check_recursion(checked, diags)
    program = CheckedProgram(checked[result.entry], checked, [d for d in diags if not d.is_error],
                             result.sources, project.root, project.allowed)
    program.sources.update(data_sources(checked.values()))
    return program, diags
