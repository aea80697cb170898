"""Stages import in one direction: no module of the package imports a later stage.

Every module under ``promptflow_dsl/`` is parsed with :mod:`ast` and every import in
it is read — at the top, inside functions, under ``if TYPE_CHECKING:`` — relative or
absolute.  Each module gets a stage from its dotted name (:func:`stage_of`); an import
of a module of a later stage fails the test with ``file:line``.  Imports within one
stage are free.

The stages, earliest first::

    base      diagnostics, resources, atomic, syntax/,
              fmt/                       the formatter: tokens and the parser's verdict
              highlight/                 the Pygments lexer and its word lists
    lang      lang/                      language semantics shared by check and run
    check     check/
    plan      plan/, picture/            pictures of plans (SVG, PNG, HTML)
    models    models/
    runtime   runtime/, telemetry/       telemetry exports a run's spans (OpenTelemetry)
    datasets  datasets/, estimate/,      estimate reads datasets and builds on the runtime;
              distributed/               distributed runs the rows of datasets on Ray
    testing   testing/
    facade    __init__.py, program.py    the library API: load / loads -> Program
    cli       cli/, __main__.py,         the command line, a client of the facade;
              report/                    report pages read trace files and run folders
              lsp/                       the language server, a client of the checker

The command line comes after the facade because it is a client of it: ``pflow``
loads programs through ``promptflow_dsl.load`` (a test replaces that function and
expects ``pflow check`` to call it) and plans them with ``Program.plan``; the facade
never imports the command line (``python -m promptflow_dsl`` is ``__main__``, which
belongs to the command line).

Handler kinds live in one package each, ``promptflow_dsl/kinds/<kind>/``; a kind's
modules take the stage their name says (:data:`KIND_MODULES`): ``clauses`` and
``ast`` are syntax-level (``base``), ``details`` and ``check`` check-level, ``plan``
plan-level, anything else (``run``, the package's ``__init__``, helpers) run-level.
``kinds/__init__.py`` and the registry (``kinds/registry.py``) are syntax-level: the
builder, the checker, the planner and the runtime all look kinds up there, so they
import nothing of a kind with an import statement and reach each stage's module by
name (``importlib``), on first use.  Any other module directly under ``kinds/`` is
check-level.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "promptflow_dsl"

ORDER = ("base", "lang", "check", "plan", "models", "runtime", "datasets", "testing", "facade",
         "cli")
RANK = {name: i for i, name in enumerate(ORDER)}

# first component under promptflow_dsl -> stage
TOP: dict[str, str] = {
    "diagnostics": "base",
    "resources": "base",
    "atomic": "base",
    "syntax": "base",
    "highlight": "base",  # word lists and a Pygments lexer: imports nothing of the package
    "fmt": "base",
    "lang": "lang",
    "check": "check",
    "plan": "plan",
    "picture": "plan",
    "models": "models",
    "runtime": "runtime",
    "telemetry": "runtime",
    "datasets": "datasets",
    "estimate": "datasets",
    "distributed": "datasets",
    "testing": "testing",
    "cli": "cli",
    "report": "cli",
    "lsp": "cli",
    "program": "facade",
    "__main__": "cli",
}

# a module of promptflow_dsl/kinds/<kind>/ -> stage (any other name: runtime)
KIND_MODULES: dict[str, str] = {
    "clauses": "base",
    "ast": "base",
    "details": "check",
    "check": "check",
    "plan": "plan",
}

# Imports of a later stage that cannot go before the other half of the restructuring
# (one package per handler kind) lands: (importing module, imported module).  This list
# may only shrink; an entry that no longer matches an import fails the test.
ALLOWED: set[tuple[str, str]] = set()


def stage_of(module: str) -> str | None:
    """The stage of a dotted module name under ``promptflow_dsl`` (None: not mapped)."""
    parts = module.split(".")
    assert parts[0] == "promptflow_dsl", module
    if len(parts) == 1:
        return "facade"
    if parts[1] == "kinds":
        if len(parts) == 2 or parts[2] == "registry":  # kinds/__init__, kinds/registry
            return "base"
        if len(parts) == 3:  # a kind's own __init__, or another module under kinds/
            return "runtime" if (PACKAGE / "kinds" / parts[2]).is_dir() else "check"
        return KIND_MODULES.get(parts[3], "runtime")
    return TOP.get(parts[1])


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def exists(module: str) -> bool:
    """Whether ``module`` is a module or package of this source tree."""
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    file: Path
    line: int


def imports_of(path: Path) -> list[Import]:
    """Every import of a ``promptflow_dsl`` module in ``path``, resolved to a module."""
    me = module_name(path)
    package = me if is_package(path) else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def add(target: str, node: ast.AST) -> None:
        if target == "promptflow_dsl" or target.startswith("promptflow_dsl."):
            found.append(Import(me, target, path, node.lineno))  # type: ignore[attr-defined]

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from . import cache` names a module; `from .x import y` a name in x
                add(sub if alias.name != "*" and exists(sub) else base, node)
    return found


def all_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def all_imports() -> list[Import]:
    return [imp for path in all_modules() for imp in imports_of(path)]


def test_every_module_has_a_stage():
    unmapped = [module_name(p) for p in all_modules() if stage_of(module_name(p)) is None]
    assert not unmapped, ("modules without a stage (add their package to TOP in "
                          f"tests/test_layering.py): {', '.join(unmapped)}")


def test_no_stage_imports_a_later_stage():
    bad = []
    for imp in all_imports():
        src, dst = stage_of(imp.source), stage_of(imp.target)
        if src is None or dst is None or RANK[dst] <= RANK[src]:
            continue
        if (imp.source, imp.target) in ALLOWED:
            continue
        rel = imp.file.relative_to(PACKAGE.parent)
        bad.append(f"{rel}:{imp.line}: {imp.source} ({src}) imports {imp.target} ({dst})")
    assert not bad, "a stage imports a later stage:\n" + "\n".join(bad)


def test_models_stand_alone():
    """The model layer takes plain data: it imports no stage but the base (the registry
    gets the checker's model declarations and the run's settings passed in)."""
    bad = [f"{i.file.relative_to(PACKAGE.parent)}:{i.line}: {i.target}" for i in all_imports()
           if stage_of(i.source) == "models" and stage_of(i.target) not in ("base", "models")]
    assert not bad, "models/ imports another stage:\n" + "\n".join(bad)


def test_allowed_entries_are_still_needed():
    seen = {(i.source, i.target) for i in all_imports()}
    stale = sorted(ALLOWED - seen)
    assert not stale, f"remove these from ALLOWED in tests/test_layering.py: {stale}"


@pytest.mark.parametrize(("module", "stage"), [
    ("promptflow_dsl", "facade"),
    ("promptflow_dsl.program", "facade"),
    ("promptflow_dsl.__main__", "cli"),
    ("promptflow_dsl.cli.route", "cli"),
    ("promptflow_dsl.syntax.ast", "base"),
    ("promptflow_dsl.lang.types", "lang"),
    ("promptflow_dsl.kinds.route.routers", "runtime"),
    ("promptflow_dsl.estimate.api", "datasets"),
    ("promptflow_dsl.kinds.sketch.clauses", "base"),
    ("promptflow_dsl.kinds.sketch.details", "check"),
    ("promptflow_dsl.kinds.sketch.check", "check"),
    ("promptflow_dsl.kinds.sketch.plan", "plan"),
    ("promptflow_dsl.kinds.sketch.run", "runtime"),
    ("promptflow_dsl.kinds.sketch.decoders", "runtime"),
    ("promptflow_dsl.kinds", "base"),
    ("promptflow_dsl.kinds.registry", "base"),
    ("promptflow_dsl.kinds.route", "runtime"),
])
def test_stage_mapping(module: str, stage: str):
    assert stage_of(module) == stage


def test_imports_are_found_everywhere():
    """Relative, absolute, in functions and under TYPE_CHECKING; ``from . import m``
    names the module ``m``."""
    found = {(i.target, i.line) for i in imports_of(PACKAGE / "cli" / "__init__.py")}
    assert any(t == "promptflow_dsl.cli.check" for t, _ in found)
    assert any(t == "promptflow_dsl" for t, _ in found)  # from .. import __version__
    lazy = {i.target for i in imports_of(PACKAGE / "program.py")}
    assert {"promptflow_dsl.plan", "promptflow_dsl.runtime", "promptflow_dsl.check.program"} <= lazy
