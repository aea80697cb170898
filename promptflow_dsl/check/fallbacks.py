"""The checks of a model declaration's ``fallbacks: ["other", ...]`` parameter.

A model's fallbacks name other models *of the same module* (``default`` included)
that the runtime tries, in order, when the model still fails after its retries with
a transport error. Checked here, after the module's models are declared:

- every name is a declared model (an unknown one is an error with a did-you-mean);
- a model does not fall back to itself, and fallbacks form no cycle (``a`` → ``b`` →
  ``a``) — both errors, located at the name that closes the loop;
- an embedding model falls back to embedding models only, a generating model to
  generating models only (an error: the other kind cannot answer the same call);
- a fallback that can do less than the model it stands in for (completion, prefill,
  log-probabilities, grammars, JSON schemas: the static table of
  :mod:`.capabilities`) is a warning: a handler that needs what it lacks gets the
  runtime's weaker method, or fails, when the fallback answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..syntax import ast
from ..syntax.builder import suggest
from .capabilities import static_capabilities

if TYPE_CHECKING:  # pragma: no cover
    from .env import ModuleEnv

_COMPARED = ("completion", "prefill", "logprobs", "grammar", "json_schema")


def _targets(decl: ast.ModelDecl) -> list[ast.Str]:
    """The names written in ``decl``'s ``fallbacks`` list (wrong types were reported by
    the parameter's type check)."""
    if decl.params is None:
        return []
    for entry in decl.params.entries:
        if entry.key == "fallbacks" and isinstance(entry.value, ast.ListExpr):
            return [item for item in entry.value.items if isinstance(item, ast.Str)]
    return []


def check_fallbacks(env: ModuleEnv) -> None:
    """Report the problems of the ``fallbacks`` of every model ``env`` declares."""
    known = env.cm.models
    edges: dict[str, list[ast.Str]] = {}
    for name, decl in env.model_decls.items():
        info = known.get(name)
        if info is None:
            continue
        edges[name] = []
        for item in _targets(decl):
            target = item.value
            other = known.get(target)
            if target == name:
                env.err(item.span, f"model '{name}' cannot fall back to itself")
                continue
            if other is None:
                hint = suggest(target, [n for n in known if n != name])
                env.err(item.span, f"unknown model '{target}' in the fallbacks of model '{name}' "
                                   f"(a fallback names a model declared in this module){hint}")
                continue
            edges[name].append(item)
            if other.embed != info.embed:
                what = "an embedding model" if info.embed else "a generating model"
                env.err(item.span, f"model '{name}' is {what} and cannot fall back to model "
                                   f"'{target}', which is not")
                continue
            if info.embed:
                continue
            mine = static_capabilities(info.model_id, info.params)
            theirs = static_capabilities(other.model_id, other.params)
            lacks = [c for c in _COMPARED if getattr(mine, c) and not getattr(theirs, c)]
            if lacks:
                env.warn(item.span, f"fallback '{target}' ({other.model_id}) lacks "
                                    f"{', '.join(lacks)}, which model '{name}' has: a handler "
                                    f"that needs {'it' if len(lacks) == 1 else 'them'} gets a "
                                    f"weaker method, or fails, when '{target}' answers")
    _report_cycles(env, edges)


def _report_cycles(env: ModuleEnv, edges: dict[str, list[ast.Str]]) -> None:
    """One error per cycle of fallbacks, at the name that closes it."""
    done: set[str] = set()
    reported: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in done:
            return
        for item in edges.get(node, []):
            target = item.value
            if target in path:
                loop = path[path.index(target):] + [target]
                members = frozenset(loop)
                if members not in reported:
                    reported.add(members)
                    env.err(item.span, "the fallbacks of models form a cycle: "
                                       + " -> ".join(loop))
                continue
            visit(target, path + [target])
        done.add(node)

    for name in edges:
        visit(name, [name])
