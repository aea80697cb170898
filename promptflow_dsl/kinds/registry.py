"""The handler kinds: one line each in :data:`KINDS`, their code found by stage.

A kind ``K`` is the package ``promptflow_dsl/kinds/K/``, one module per stage (see
``kinds/README.md``):

========== =============== =======================================================
module     stage           provides
========== =============== =======================================================
ast.py     build           the declaration's AST class (``kind = "K"``)
clauses.py build           ``RULES``: grammar rule -> builder function;
                           ``CLAUSES``: clause word -> (AST field, converter), per
                           clause body (:class:`KindSyntax`)
details.py check           the frozen, typed ``Details`` the checker records
check.py   check           ``check(env, decl, signature, exprs) -> Details``
plan.py    plan            optional: ``plan(builder, handler)`` (default: inputs,
                           one call, return)
run.py     run             ``async run(ctx, handler, inputs, step) -> value``
========== =============== =======================================================

Nothing here imports a kind: :func:`stage_module` imports ``kinds/K/<module>.py`` on
first use, so a stage loads only the modules of its own stage (the builder loads
the ``clauses`` modules, never a ``run`` module).  The consumers type what they get
with a protocol of their own stage (``check.checker.KindCheck``,
``plan.planner.KindPlan``, ``runtime.context.KindRun``).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:  # pragma: no cover
    from ..syntax.clauses import ClauseSpec

#: every handler kind, in the order the language reference lists them
KINDS: tuple[str, ...] = (
    "prompt",
    "tool",
    "flow",
    "decompose",
    "route",
    "sketch",
)


class KindSyntax(Protocol):
    """``kinds/K/clauses.py``."""

    #: grammar rule name -> ``build(builder, meta, children)`` making its AST node
    RULES: Mapping[str, Callable[[Any, Any, list[Any]], Any]]
    #: clause body ("prompt", "expert", ...) -> clause word -> (AST field, converter)
    CLAUSES: Mapping[str, ClauseSpec]


@cache
def stage_module(kind: str, module: str) -> ModuleType | None:
    """``promptflow_dsl.kinds.<kind>.<module>``, imported on first use; ``None`` when the
    kind has no such module.  Raises ``KeyError`` for an unknown kind."""
    if kind not in KINDS:
        raise KeyError(kind)
    name = f"{__package__}.{kind}.{module}"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def syntax(kind: str) -> KindSyntax:
    """The clause rules and builder functions of ``kind``."""
    found = stage_module(kind, "clauses")
    assert found is not None, kind
    return cast(KindSyntax, found)
