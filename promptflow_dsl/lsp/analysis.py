"""Checking a document the way ``pflow check`` does, with the editor's unsaved texts.

:func:`analyse` loads the document (and, transitively, its imports) with an overlay of
the open buffers, parses through a :class:`ParseCache` (modules keyed by name and
content digest, so an import that did not change is never parsed again) and checks the
result.  A :class:`ResultCache` keeps whole check results keyed by the digests of every
module they read, and a :class:`~.incremental.ModuleCheckCache` the checked imported
modules (an import that did not change is not checked again), so re-checking unchanged texts (a save, a dependent re-check) costs
a look-up.  Texts other than ``.pflow`` files (prompt files, demos, data) are not part
of the keys: the server clears the result cache when a file is saved.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..check.checker import check_loaded, project_for
from ..check.loader import LoadedModule, LoadResult, Project, load
from ..check.program import CheckedModule, CheckedProgram
from ..diagnostics import Diagnostic
from ..syntax import SourceFile, ast, parse_module
from ..syntax.source import display_name, normalize
from .chunks import ChunkCache
from .incremental import ModuleCheckCache


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class ParseCache:
    """``parse_module`` memoized by (file name, content digest), least recently used
    entries dropped past ``size``; a text not seen before is parsed declaration by
    declaration (:class:`~.chunks.ChunkCache`), so an edit re-parses only the
    declarations it changed."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.chunks = ChunkCache()
        self.entries: OrderedDict[tuple[str, str], tuple[ast.Module | None, list[Diagnostic]]]
        self.entries = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, source: SourceFile) -> tuple[ast.Module | None, list[Diagnostic]]:
        key = (source.uri, digest(source.text))
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
            self.hits += 1
            return found[0], list(found[1])
        self.misses += 1
        module, diags = self.chunks.parse(source, parse_module)
        self.entries[key] = (module, list(diags))
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return module, diags


@dataclass
class Analysis:
    """One document checked: what was loaded, the program (``None`` when the document
    did not parse) and every diagnostic of every file it reads."""

    path: Path
    text: str
    version: int | None
    project: Project
    load: LoadResult
    program: CheckedProgram | None
    diagnostics: list[Diagnostic]
    key: tuple[tuple[str, str], ...] = ()
    files: dict[str, Path] = field(default_factory=dict)  # name in spans -> path

    @property
    def entry_key(self) -> str:
        return self.load.entry

    @property
    def entry(self) -> LoadedModule:
        return self.load.modules[self.load.entry]

    def checked(self, module_key: str) -> CheckedModule | None:
        if self.program is None:
            return None
        return self.program.modules.get(module_key)

    def module_paths(self) -> set[Path]:
        return {lm.path.resolve() for lm in self.load.modules.values() if lm.path is not None}

    def path_of(self, file: str) -> Path:
        """The file a span names (a module, a data file: names relative to the server's
        working folder)."""
        found = self.files.get(file)
        return found if found is not None else Path(file).resolve()

    def by_path(self) -> dict[Path, list[Diagnostic]]:
        out: dict[Path, list[Diagnostic]] = {}
        for d in self.diagnostics:
            out.setdefault(self.path_of(d.span.file), []).append(d)
        return out


class ResultCache:
    """Check results keyed by the (module, digest) pairs of every module they read."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, tuple[CheckedProgram | None, list[Diagnostic]]]
        self.entries = OrderedDict()

    def get(self, key: tuple) -> tuple[CheckedProgram | None, list[Diagnostic]] | None:
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: tuple, value: tuple[CheckedProgram | None, list[Diagnostic]]) -> None:
        self.entries[key] = value
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


def load_with(path: Path, text: str, overlay: Mapping[str, str], parse: ParseCache,
              project: Project | None = None) -> tuple[LoadResult, Project]:
    """Load ``text`` as the file ``path`` (and its imports, open buffers first).
    Never raises for user errors."""
    path = path.resolve()
    project = project or project_for(path)
    source = SourceFile(display_name(path), normalize(text), path)
    return load(source, project, overlay, parse), project


def analyse(path: Path, text: str, version: int | None, overlay: Mapping[str, str],
            parse: ParseCache, results: ResultCache | None = None,
            modules: ModuleCheckCache | None = None) -> Analysis:
    """Load and check ``text`` as the file ``path``; never raises for user errors."""
    loaded, project = load_with(path, text, overlay, parse)
    key = tuple(sorted((k, digest(m.source.text)) for k, m in loaded.modules.items()))
    found = results.get(key) if results is not None else None
    if found is None:
        found = check_loaded(loaded, project, reuse=modules)
        if results is not None:
            results.put(key, found)
    program, diags = found
    files = {m.source.uri: Path(m.key) for m in loaded.modules.values() if m.path is not None}
    return Analysis(path.resolve(), text, version, project, loaded, program, list(diags), key,
                    files)
