"""The check stage: loaded modules → :class:`CheckedProgram`, every error in one pass.

Modules are checked imports-first.  Within a module: names, models and types are
declared, then every handler's signature is computed, then hooks, handler
bodies, evals and tests are checked.  Finally the call graph of the whole program is
checked for recursion, which is allowed only through a ``decompose`` (bounded
by its ``max_depth``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Protocol, cast

from ..diagnostics import Diagnostic, Span, error
from ..kinds import registry
from ..syntax import ast
from ..syntax.gc_pause import paused_gc
from . import decls
from .env import ModuleEnv
from .evals import check_eval, data_sources
from .exprs import ExprChecker
from .fallbacks import check_fallbacks
from .loader import LoadedModule, LoadResult, Project
from .program import CheckedModule, CheckedProgram, Details, HandlerInfo, Signature


class KindCheck(Protocol):
    """``kinds/<kind>/check.py``: the rules of one handler kind."""

    def check(self, env: ModuleEnv, decl: Any, signature: Signature, exprs: ExprChecker
              ) -> Details:
        """Check ``decl`` (its signature already computed), reporting problems on ``env``;
        expressions go through ``exprs``, which records the calls they make.  Returns
        what later stages need to know."""
        ...


def kind_check(kind: str) -> KindCheck:
    found = registry.stage_module(kind, "check")
    assert found is not None, kind
    return cast(KindCheck, found)


def _check_module(env: ModuleEnv) -> None:
    env.declare()
    env.declare_models()
    check_fallbacks(env)
    env.resolve_types()
    mod = env.module
    handler_decls = [d for d in mod.decls if isinstance(d, ast.HandlerDecl)
                     and env.values.get(d.name) is d]
    for d in handler_decls:
        sig = env.signature(d)
        env.cm.handlers[d.name] = HandlerInfo(f"{env.cm.key}::{d.name}", d.name, d.kind,
                                              env.cm.key, sig, d)
    for hd in mod.decls:
        if isinstance(hd, ast.HookDecl) and env.values.get(hd.name) is hd:
            env.cm.hooks[hd.name] = decls.check_hook(env, hd, ExprChecker(env))
    for d in handler_decls:
        info = env.cm.handlers[d.name]
        ec = ExprChecker(env)
        details = kind_check(d.kind).check(env, d, info.signature, ec)
        calls = tuple(dict.fromkeys([*ec.calls, *details.edges()]))
        env.cm.handlers[d.name] = dataclasses.replace(info, calls=calls, details=details)
    for ed in mod.decls:
        if isinstance(ed, ast.EvalDecl) and env.evals.get(ed.name) is ed:
            env.cm.evals[ed.name] = check_eval(env, ed)
    for td in mod.decls:
        if isinstance(td, ast.TestDecl):
            env.cm.tests.append(decls.check_test(env, td, ExprChecker(env)))


def _check_recursion(modules: dict[str, CheckedModule], diags: list[Diagnostic]) -> None:
    """Report call cycles that do not pass through a decompose handler."""
    handlers = {h.key: h for m in modules.values() for h in m.handlers.values()}
    graph: dict[str, set[str]] = {k: set() for k in handlers}
    for h in handlers.values():
        if h.details.may_recurse:
            continue
        for target, _kind in h.calls:
            if target in graph:
                graph[h.key].add(target)
    for _ in range(len(handlers)):
        try:
            TopologicalSorter(graph).prepare()
            return
        except CycleError as exc:
            cycle: list[str] = list(exc.args[1])
        # graphlib lists the cycle backwards (each node is a predecessor of the previous one)
        cycle.reverse()
        members = [handlers[k] for k in cycle[:-1]]
        first = min(members, key=lambda h: (h.decl.span.file, h.decl.span.line))
        chain = " -> ".join(h.name for h in (*members, members[0]))
        diags.append(error(first.decl.name_span,
                           f"recursive call cycle {chain}: recursion is only allowed through a "
                           f"decompose handler (bounded by max_depth)",
                           *[(h.decl.name_span, f"'{h.name}' is on the cycle")
                             for h in members if h is not first]))
        graph[cycle[0]].discard(cycle[1])


class CheckedModules(Protocol):
    """Checked modules kept between checks, by :func:`module_stamp` (e.g. an LRU cache
    in a long-running process): what :func:`check_loaded` reuses."""

    def get(self, stamp: str) -> tuple[CheckedModule, list[Diagnostic]] | None:
        """The checked module and the diagnostics its check reported, if kept."""
        ...

    def put(self, stamp: str, value: tuple[CheckedModule, list[Diagnostic]]) -> None:
        """Keep ``value`` under ``stamp``."""
        ...


def module_stamp(lm: LoadedModule, project: Project, imported: Mapping[str, str]) -> str:
    """A digest of everything checking ``lm`` depends on among ``.pflow`` files: its key,
    name and text, the stamps of the modules it imports (``imported``: module key ->
    stamp, so the digest covers imports transitively) and the project's folders.  Files
    read besides ``.pflow`` files (prompt files, demos, data) are not part of it."""
    h = hashlib.blake2b(digest_size=16)
    base = f"{project.root}|{'|'.join(map(str, project.allowed))}"
    for part in (base, lm.key, lm.source.uri, lm.source.text,
                 *sorted(f"{a}={imported.get(k, k)}" for a, k in lm.imports.items())):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def check_loaded(result: LoadResult, project: Project, reuse: CheckedModules | None = None
                 ) -> tuple[CheckedProgram | None, list[Diagnostic]]:
    """Check every loaded module, imports first.

    With ``reuse``, an imported module whose :func:`module_stamp` is kept there is taken
    from it (with the diagnostics its check reported) instead of being checked again, and
    every imported module checked is kept there; the entry module is always checked.

    Returns the program (``None`` if the entry did not parse) and all diagnostics;
    the caller decides whether errors are fatal.  Never raises for user errors.
    """
    with paused_gc():  # checking allocates much and frees little until the end
        return _check_all(result, project, reuse)


def _check_all(result: LoadResult, project: Project, reuse: CheckedModules | None
               ) -> tuple[CheckedProgram | None, list[Diagnostic]]:
    diags = list(result.diagnostics)
    checked: dict[str, CheckedModule] = {}
    stamps: dict[str, str] = {}
    for key in result.order:
        lm = result.modules[key]
        stamp = None
        if reuse is not None and key != result.entry:
            stamps[key] = stamp = module_stamp(lm, project, stamps)
        if lm.module is None:
            continue
        found = reuse.get(stamp) if reuse is not None and stamp is not None else None
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
        if reuse is not None and stamp is not None:
            reuse.put(stamp, (env.cm, diags[before:]))
    if result.entry not in checked:
        return None, diags
    _check_recursion(checked, diags)
    program = CheckedProgram(checked[result.entry], checked, [d for d in diags if not d.is_error],
                             result.sources, project.root, project.allowed)
    program.sources.update(data_sources(checked.values()))  # data-file lines diagnostics show
    return program, diags


def project_for(entry: Path | None, allow: tuple[Path, ...] = (), root: Path | None = None) -> Project:
    from .loader import find_project_root

    if root is None:
        root = find_project_root(entry.parent if entry is not None else Path.cwd())
    return Project(root, allow)
