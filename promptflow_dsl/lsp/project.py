"""Every module of a project, indexed: what find-references and rename search.

The project is the checked document's (the folder with ``pyproject.toml`` or
``pflow.toml`` above it); its modules are every ``.pflow`` file under that folder
(as ``pflow check DIR`` finds them), the open buffers standing in for their files,
and what they import.
"""

from __future__ import annotations

from pathlib import Path

from ..check.loader import LoadedModule, pflow_files
from ..check.program import CheckedModule
from .analysis import Analysis, load_with
from .documents import DocumentStore
from .index import ModuleIndex, Occurrence, Symbol, index_module


class ProjectIndex:
    def __init__(self, modules: dict[str, LoadedModule], checked: dict[str, CheckedModule]):
        self.modules = modules
        self.indexes: dict[str, ModuleIndex] = {}
        for key, lm in modules.items():
            self.indexes[key] = index_module(lm, checked.get(key), self._ast)

    def _ast(self, key: str):  # noqa: ANN202 - the Lookup protocol of index.py
        lm = self.modules.get(key)
        return lm.module if lm is not None else None

    def occurrences(self, symbol: Symbol) -> list[Occurrence]:
        return [occ for idx in self.indexes.values() for occ in idx.occurrences
                if occ.symbol == symbol]


def project_index(store: DocumentStore, analysis: Analysis) -> ProjectIndex:
    """Load every ``.pflow`` file of ``analysis``'s project (parses are cached)."""
    modules: dict[str, LoadedModule] = dict(analysis.load.modules)
    overlay = store.overlay()
    root = analysis.project.root
    try:
        files = pflow_files([root])
    except OSError:
        files = []
    for path in files:
        key = str(Path(path).resolve())
        if key in modules:
            continue
        text = store.text_of(Path(key))
        if text is None:
            continue
        loaded, _ = load_with(Path(key), text, overlay, store.parse, analysis.project)
        for k, lm in loaded.modules.items():
            modules.setdefault(k, lm)
    checked = dict(analysis.program.modules) if analysis.program is not None else {}
    return ProjectIndex(modules, checked)
