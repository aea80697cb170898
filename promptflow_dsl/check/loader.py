"""The load stage for whole programs: the entry file and every module it imports.

Imports are resolved on a search path: ``std.*`` in the standard library folder;
``"relative/path.pflow"`` beside the importing file; a dotted ``a.b`` as
``a/b.pflow`` beside the importing file, then under the project root.  Files a
program refers to (imports, prompt files, demos) must stay inside the project
root — the nearest folder above the entry file holding ``pyproject.toml`` or
``pflow.toml``, else the entry file's folder — unless allowed explicitly.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import Diagnostic, Span, error
from ..resources import stdlib_dir
from ..syntax import SourceFile, ast, parse_module, read_source
from ..syntax.source import display_name, file_kind, normalize, path_problem, shown_path

#: ``parse_module``'s signature: a source file -> its module (``None`` when it did not
#: parse) and the diagnostics found
ParseFn = Callable[[SourceFile], "tuple[ast.Module | None, list[Diagnostic]]"]

PROJECT_MARKERS = ("pyproject.toml", "pflow.toml")

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pflow-cache", ".tox",
             "build", "dist"}


def pflow_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``.pflow`` file named or under a named folder (sorted, hidden folders skipped):
    the files ``pflow check`` and ``pflow test`` take from their arguments.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(str(raw))
        if p.is_file():
            out.append(p)
            continue
        for f in sorted(p.rglob("*.pflow")):
            rel = f.relative_to(p).parts[:-1]
            if any(part in SKIP_DIRS or part.startswith(".") for part in rel):
                continue
            out.append(f)
    seen: set[Path] = set()
    unique = []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def find_project_root(entry_dir: Path) -> Path:
    """The nearest folder at or above ``entry_dir`` holding a project marker, else ``entry_dir``."""
    entry_dir = entry_dir.resolve()
    for d in (entry_dir, *entry_dir.parents):
        if any((d / m).is_file() for m in PROJECT_MARKERS):
            return d
    return entry_dir


@dataclass
class Project:
    """Where a program's files may come from."""

    root: Path
    allowed: tuple[Path, ...] = ()

    def permits(self, path: Path) -> bool:
        """Whether ``path`` lies in the project, the standard library or an allowed folder.

        Raises ``OSError`` / ``ValueError`` when the path cannot be resolved.
        """
        p = path.resolve()
        std = stdlib_dir().resolve()
        for base in (self.root.resolve(), std, *(a.resolve() for a in self.allowed)):
            if p == base or base in p.parents:
                return True
        return False

    def resolve_file(self, declaring: Path | None, rel: str, span: Span,
                     what: str) -> tuple[Path | None, Diagnostic | None]:
        """Resolve ``rel`` against the declaring file's folder: the one function every
        file a program names goes through (imports, prompt files, demos, training files,
        eval data, literal ``read_text`` / ``read_jsonl`` paths).

        Returns the path, or a diagnostic at ``span`` for a path no file can have (a NUL,
        a lone surrogate, too long), one outside the project, a missing file, or anything
        but a regular file (a folder, a FIFO, a device: reading those could block forever).
        Never raises.
        """
        shown = shown_path(rel)
        problem = path_problem(rel)
        if problem is not None:
            return None, error(span, f"{what} '{shown}' {problem}")
        base = declaring.parent if declaring is not None else self.root
        try:
            path = (base / rel).resolve() if not Path(rel).is_absolute() else Path(rel).resolve()
            if not self.permits(path):
                return None, error(span, f"{what} '{shown}' is outside the project folder (the "
                                         f"nearest folder with pyproject.toml or pflow.toml); "
                                         f"allow it with --allow-path")
            mode = path.stat().st_mode
        except FileNotFoundError:
            return None, error(span, f"{what} '{shown}' not found (looked for "
                                     f"{shown_path(display_name(base / rel), 200)})")
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return None, error(span, f"cannot use {what} '{shown}': {reason}")
        if stat.S_ISDIR(mode):
            return None, error(span, f"{what} '{shown}' is a folder, not a file")
        if not stat.S_ISREG(mode):
            return None, error(span, f"{what} '{shown}' is {file_kind(mode)}, not a regular file")
        return path, None


@dataclass
class LoadedModule:
    key: str  # resolved path as text, or "<string>" for text loaded without a file
    source: SourceFile
    module: ast.Module | None
    std_name: str | None = None  # "std.text" for standard library modules
    imports: dict[str, str] = field(default_factory=dict)  # alias -> module key

    @property
    def path(self) -> Path | None:
        return self.source.path


@dataclass
class LoadResult:
    entry: str
    modules: dict[str, LoadedModule]
    order: list[str]  # imported modules before their importers
    diagnostics: list[Diagnostic]

    @property
    def sources(self) -> dict[str, str]:
        return {m.source.uri: m.source.text for m in self.modules.values()}


class Loader:
    """Loads modules from disk.  ``overlay`` maps resolved paths (as text) to texts that
    stand in for those files (an editor's unsaved buffers); ``parse`` replaces
    :func:`parse_module` (a caller may cache it by content)."""

    def __init__(self, project: Project, overlay: Mapping[str, str] | None = None,
                 parse: ParseFn | None = None) -> None:
        self.project = project
        self.overlay: Mapping[str, str] = overlay or {}
        self.parse: ParseFn = parse or parse_module
        self.modules: dict[str, LoadedModule] = {}
        self.order: list[str] = []
        self.diagnostics: list[Diagnostic] = []
        self._stack: list[str] = []

    def load_entry(self, source: SourceFile) -> LoadResult:
        key = str(source.path.resolve()) if source.path else "<string>"
        self._load(key, source, None)
        return LoadResult(key, self.modules, self.order, self.diagnostics)

    def _load(self, key: str, source: SourceFile, std_name: str | None) -> None:
        module, diags = self.parse(source)
        self.diagnostics.extend(diags)
        lm = LoadedModule(key, source, module, std_name)
        self.modules[key] = lm
        self._stack.append(key)
        if module is not None:
            for decl in module.decls:
                if isinstance(decl, ast.ImportDecl):
                    target = self._import(lm, decl)
                    if target is not None:
                        lm.imports[decl.name] = target
        self._stack.pop()
        self.order.append(key)

    def _import(self, importer: LoadedModule, decl: ast.ImportDecl) -> str | None:
        path, std_name, diag = self._locate(importer, decl)
        if diag is not None:
            self.diagnostics.append(diag)
            return None
        assert path is not None
        key = str(path.resolve())
        if key in self._stack:
            chain = self._stack[self._stack.index(key):] + [key]
            names = " -> ".join(self._show(k) for k in chain)
            self.diagnostics.append(error(decl.span, f"import cycle: {names}"))
            return None
        if key not in self.modules:
            source: SourceFile | None
            if key in self.overlay:
                source = SourceFile(self._uri(path, std_name), normalize(self.overlay[key]), path)
                rdiag = None
            else:
                source, rdiag = read_source(path, self._uri(path, std_name))
            if source is None:
                assert rdiag is not None
                self.diagnostics.append(error(decl.span, f"cannot import: {rdiag.message}"))
                return None
            self._load(key, source, std_name)
        return key

    def _show(self, key: str) -> str:
        lm = self.modules.get(key)
        return lm.source.uri if lm else key

    def _uri(self, path: Path, std_name: str | None) -> str:
        if std_name:
            return f"std/{path.relative_to(stdlib_dir().resolve()).as_posix()}"
        return display_name(path)

    def _locate(self, importer: LoadedModule, decl: ast.ImportDecl
                ) -> tuple[Path | None, str | None, Diagnostic | None]:
        if decl.path is not None:
            rel = decl.path.value
            if not rel.endswith(".pflow"):
                return None, None, error(decl.path.span, f"imported file '{shown_path(rel)}' must end "
                                                         f"in .pflow")
            path, diag = self.project.resolve_file(importer.path, rel, decl.path.span, "imported file")
            return path, None, diag
        assert decl.module is not None
        parts = decl.module.split(".")
        span = decl.span
        if parts[0] == "std":
            if len(parts) == 1:
                return None, None, error(span, "import a standard module, e.g. `import std.text`")
            std_path = stdlib_dir().resolve().joinpath(*parts[1:]).with_suffix(".pflow")
            if (path_problem("/".join(parts[1:]) + ".pflow") is not None
                    or not std_path.is_file()):
                available = sorted(p.stem for p in stdlib_dir().glob("*.pflow"))
                return None, None, error(span, f"no standard module '{decl.module}' "
                                               f"(available: {', '.join('std.' + a for a in available)})")
            return std_path, decl.module, None
        rel_path = Path(*parts).with_suffix(".pflow")
        problem = path_problem(rel_path.as_posix())
        if problem is not None:
            return None, None, error(span, f"module '{shown_path(decl.module)}' cannot be a file: "
                                           f"its path {problem}")
        bases = [importer.path.parent] if importer.path else []
        bases.append(self.project.root)
        for base in bases:
            try:
                cand = (base / rel_path).resolve()
                if not cand.is_file():
                    continue
                if not self.project.permits(cand):
                    break
            except (OSError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                return None, None, error(span, f"cannot import '{shown_path(decl.module)}': {reason}")
            return cand, None, None
        return None, None, error(span, f"no module '{decl.module}' (looked for {rel_path.as_posix()} beside "
                                       f"this file and in the project folder)")


def load(source: SourceFile, project: Project, overlay: Mapping[str, str] | None = None,
         parse: ParseFn | None = None) -> LoadResult:
    """Load the entry source and, transitively, every module it imports (an imported
    file whose resolved path is a key of ``overlay`` is read from there, not from disk;
    ``parse`` replaces :func:`parse_module`).

    Never raises for user errors: missing files, syntax errors and import cycles are
    returned as diagnostics.
    """
    return Loader(project, overlay, parse).load_entry(source)
