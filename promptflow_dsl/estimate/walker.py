"""The estimator's walk: expressions and handler calls, without running anything.

:class:`Estimator` evaluates an expression over :mod:`.values` (known or unknown
values) and returns an :class:`Outcome`: the :class:`~.tally.Usage` of the model calls
it would make and its value. What can be computed is computed: an expression that
calls no handler and reads only known values is evaluated by the runtime's own
evaluator (builtins, operators, ``read_text``...), so a comprehension over a list that
comes from the data has its real length and each item its real text. A handler call
goes to the estimator of its kind (:mod:`.kinds`), which says how many model calls it
makes and how large they are; its result is unknown.

What cannot be known becomes a range: the sides of a conditional whose condition is
unknown are alternatives (:meth:`Usage.either`), the fallback of a ``try`` and the right
operand of ``and`` / ``or`` may or may not run (:meth:`Usage.maybe`), and a
comprehension over a list of unknown size runs its item any number of times
(:meth:`Usage.unbounded`; a note gives the numbers per item).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..check.program import CheckedModule, CheckedProgram, HandlerInfo
from ..lang.types import ANY, BoolType, FloatType, IntType, ListType, LiteralType, Type
from ..lang.values import conform
from ..plan.model import children, show_expr
from ..syntax import ast
from .tally import Usage
from .values import Known, Unknown, Value

if TYPE_CHECKING:  # pragma: no cover
    from .models import Models

#: the size given to an unknown number or bool when a template writes it
SCALAR_TYPICAL, SCALAR_BOUND = 1, 16


@dataclass
class Outcome:
    usage: Usage
    value: Value


KindEstimator = Callable[["Estimator", HandlerInfo, dict[str, Value]], Outcome]


class Estimator:
    """Estimates handler calls and expressions of one program (see the module docstring).

    ``kinds`` maps a handler kind to its estimator. Close with :meth:`close` (the
    event loop that evaluates known expressions).
    """

    def __init__(self, program: CheckedProgram, models: Models,
                 kinds: dict[str, KindEstimator]) -> None:
        self.program = program
        self.models = models
        self.kinds = kinds
        self.handlers = program.all_handlers()
        self.decompose_depth = 0  # decomposer calls in the chain being estimated
        self._loop = asyncio.new_event_loop()
        self._stub: Any = SimpleNamespace(sequential=True, program=program, trace=None)
        self._pure: dict[int, bool] = {}
        self._free: dict[int, frozenset[str]] = {}
        self._memo: dict[tuple[Any, ...], Outcome] = {}

    def close(self) -> None:
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()

    def name(self, key: str) -> str:
        return self.program.display_name(key)

    # ------------------------------------------------------------ handler calls

    def call(self, key: str, args: dict[str, Value]) -> Outcome:
        """A call of handler ``key`` with ``args`` by parameter name (defaults filled in)."""
        h = self.handlers[key]
        bound: dict[str, Value] = {}
        module = self.program.module_of(key)
        for p in h.signature.params:
            value = args.get(p.name)
            if value is None and p.default is not None:
                value = self.eval(p.default, {}, module).value
            if value is None:
                value = Unknown(p.type)
            if isinstance(value, Known):
                try:
                    value = Known(conform(value.value, p.type))
                except ValueError:
                    pass  # the run would fail here; the estimate goes on with the value
            bound[p.name] = value
        memo_key: tuple[Any, ...] | None = None
        if all(isinstance(v, Unknown) for v in bound.values()):
            memo_key = (key, self.decompose_depth,
                        tuple((n, v.type, v.typical, v.bound)
                              for n, v in bound.items() if isinstance(v, Unknown)))
            if memo_key in self._memo:
                got = self._memo[memo_key]
                return Outcome(replace(got.usage, tallies=dict(got.usage.tallies),
                                       notes=list(got.usage.notes)), got.value)
        out = self.kinds[h.kind](self, h, bound)
        if memo_key is not None:
            self._memo[memo_key] = out
        return out

    # ------------------------------------------------------------ expressions

    def type_of(self, e: ast.Expr, module: CheckedModule) -> Type:
        return module.expr_types.get(e.span, ANY)

    def pure(self, e: ast.Expr, module: CheckedModule) -> bool:
        """Whether ``e`` calls no handler (so it can be evaluated, given its names)."""
        got = self._pure.get(id(e))
        if got is None:
            if isinstance(e, ast.Call):
                res = module.resolutions.get(e.span)
                here = res is None or res.kind == "builtin"
            else:
                here = True
            got = here and all(self.pure(c, module) for c in children(e))
            self._pure[id(e)] = got
        return got

    def free_names(self, e: ast.Expr) -> frozenset[str]:
        got = self._free.get(id(e))
        if got is None:
            if isinstance(e, ast.Name):
                got = frozenset({e.name})
            elif isinstance(e, ast.Call):  # the callee is a name of a function, not a value
                got = frozenset().union(*(self.free_names(a) for a in e.args),
                                        *(self.free_names(k.value) for k in e.kwargs))
            elif isinstance(e, ast.Comprehension):
                inner = self.free_names(e.elt) | (self.free_names(e.cond) if e.cond else frozenset())
                got = self.free_names(e.iter) | (inner - {e.var})
            else:
                got = frozenset().union(*(self.free_names(c) for c in children(e)))
            self._free[id(e)] = got
        return got

    def evaluate(self, e: ast.Expr, env: dict[str, Any], module: CheckedModule) -> Any:
        """The value of a pure expression over known values, by the runtime's evaluator.
        Raises ``RunError``."""
        from ..runtime.evaluate import Evaluator

        return self._loop.run_until_complete(Evaluator(self._stub, module).eval(e, env))

    def sized(self, t: Type, parts: list[Value]) -> Unknown:
        """An unknown value of type ``t`` built from ``parts`` (its size is theirs)."""
        if isinstance(t, IntType | FloatType | BoolType):
            return Unknown(t, SCALAR_TYPICAL, SCALAR_BOUND)
        if isinstance(t, LiteralType):
            longest = max(len(v) for v in t.values)
            return Unknown(t, 1, longest)
        typical = 0
        bound_: int | None = 0
        for p in parts:
            if isinstance(p, Unknown):
                typical += p.typical
                bound_ = bound_ + p.bound if bound_ is not None and p.bound is not None else None
        return Unknown(t, typical, bound_)

    def eval(self, e: ast.Expr, env: dict[str, Value], module: CheckedModule) -> Outcome:
        """The usage and value of ``e`` in ``env`` (see the module docstring)."""
        from ..runtime.errors import RunError

        if isinstance(e, ast.Name):
            return Outcome(Usage(), env.get(e.name, Unknown(self.type_of(e, module))))
        if isinstance(e, ast.Attr):
            obj = self.eval(e.obj, env, module)
            if isinstance(obj.value, Known):
                got = obj.value.value
                value: Value = (Known(got.get(e.name)) if isinstance(got, dict)
                                else Unknown(self.type_of(e, module)))
            else:
                value = Unknown(self.type_of(e, module), obj.value.typical, obj.value.bound)
            return Outcome(obj.usage, value)
        if self.pure(e, module):
            names = self.free_names(e)
            if all(isinstance(env.get(n), Known) for n in names):
                known = {n: v.value for n, v in env.items() if isinstance(v, Known)}
                try:
                    return Outcome(Usage(), Known(self.evaluate(e, known, module)))
                except RunError as exc:
                    usage = Usage().note(f"{e.span}: `{show_expr(e)}` would fail: {exc.message}")
                    return Outcome(usage, Unknown(self.type_of(e, module)))
            parts = [env.get(n, Unknown(ANY)) for n in names]
            return Outcome(Usage(), self.sized(self.type_of(e, module), parts))
        method = getattr(self, "_" + type(e).__name__, None)
        if method is not None:
            return method(e, env, module)  # type: ignore[no-any-return]
        return self._generic(e, env, module)

    def _generic(self, e: ast.Expr, env: dict[str, Value], module: CheckedModule) -> Outcome:
        usage = Usage()
        parts: list[Value] = []
        for c in children(e):
            if isinstance(e, ast.Call) and c is e.func:
                continue  # the name of the function, not a value
            out = self.eval(c, env, module)
            usage = usage + out.usage
            parts.append(out.value)
        return Outcome(usage, self.sized(self.type_of(e, module), parts))

    def _Call(self, e: ast.Call, env: dict[str, Value], module: CheckedModule) -> Outcome:  # noqa: N802
        res = module.resolutions.get(e.span)
        if res is None or res.kind != "handler":
            return self._generic(e, env, module)
        usage = Usage()
        h = self.handlers[res.target]
        args: dict[str, Value] = {}
        for i, a in enumerate(e.args):
            out = self.eval(a, env, module)
            usage = usage + out.usage
            if i < len(h.signature.params):
                args[h.signature.params[i].name] = out.value
        for kw in e.kwargs:
            out = self.eval(kw.value, env, module)
            usage = usage + out.usage
            args[kw.name] = out.value
        out = self.call(res.target, args)
        return Outcome(usage + out.usage, out.value)

    def _Comprehension(self, e: ast.Comprehension, env: dict[str, Value],  # noqa: N802
                       module: CheckedModule) -> Outcome:
        it = self.eval(e.iter, env, module)
        usage = it.usage
        t = self.type_of(e, module)
        if isinstance(it.value, Known) and isinstance(it.value.value, list | dict):
            parts: list[Value] = []
            for item in list(it.value.value):
                out = self._item(e, {**env, e.var: Known(item)}, module)
                usage = usage + out.usage
                parts.append(out.value)
            return Outcome(usage, self.sized(t, parts))
        seq = it.value.type if isinstance(it.value, Unknown) else ANY
        item_type = seq.item if isinstance(seq, ListType) else ANY
        inner = {**env, e.var: Unknown(item_type, 0, None)}
        one = self._item(e, inner, module)
        if one.usage.tallies:
            usage = usage + one.usage.unbounded()
            full = self.eval(e.elt, inner, module).usage  # an item that is kept
            if e.cond is not None:
                full = self.eval(e.cond, inner, module).usage + full
            usage.note(per_item_note(e, full))
        return Outcome(usage, Unknown(t, 0, None))

    def _item(self, e: ast.Comprehension, env: dict[str, Value], module: CheckedModule) -> Outcome:
        usage = Usage()
        if e.cond is not None:
            cond = self.eval(e.cond, env, module)
            usage = cond.usage
            if isinstance(cond.value, Known) and not cond.value.value:
                return Outcome(usage, Unknown(ANY, 0, 0))
            elt = self.eval(e.elt, env, module)
            if isinstance(cond.value, Unknown):
                return Outcome(usage + elt.usage.maybe(), elt.value)
            return Outcome(usage + elt.usage, elt.value)
        return self.eval(e.elt, env, module)

    def _alternatives(self, t: Type, a: Outcome, b: Outcome) -> Outcome:
        """One of two outcomes (a conditional's sides)."""
        va, vb = a.value, b.value
        typical = min(_typical(va), _typical(vb))
        bounds = [_bound(va), _bound(vb)]
        bound = None if None in bounds else max(x for x in bounds if x is not None)
        return Outcome(a.usage.either(b.usage), Unknown(t, typical, bound))

    def _Conditional(self, e: ast.Conditional, env: dict[str, Value],  # noqa: N802
                     module: CheckedModule) -> Outcome:
        cond = self.eval(e.cond, env, module)
        if isinstance(cond.value, Known):
            side = self.eval(e.then if cond.value.value else e.orelse, env, module)
            return Outcome(cond.usage + side.usage, side.value)
        then, orelse = self.eval(e.then, env, module), self.eval(e.orelse, env, module)
        both = self._alternatives(self.type_of(e, module), then, orelse)
        return Outcome(cond.usage + both.usage, both.value)

    def _Try(self, e: ast.Try, env: dict[str, Value], module: CheckedModule) -> Outcome:  # noqa: N802
        tried, fallback = self.eval(e.expr, env, module), self.eval(e.fallback, env, module)
        both = self._alternatives(self.type_of(e, module), tried, fallback)
        return Outcome(tried.usage + fallback.usage.maybe(), both.value)

    def _BoolOp(self, e: ast.BoolOp, env: dict[str, Value], module: CheckedModule) -> Outcome:  # noqa: N802
        left = self.eval(e.left, env, module)
        if isinstance(left.value, Known):
            if bool(left.value.value) == (e.op == "or"):
                return left
            right = self.eval(e.right, env, module)
            return Outcome(left.usage + right.usage, right.value)
        right = self.eval(e.right, env, module)
        return Outcome(left.usage + right.usage.maybe(),
                       self.sized(self.type_of(e, module), [left.value, right.value]))


def _typical(v: Value) -> int:
    return v.typical if isinstance(v, Unknown) else 0


def _bound(v: Value) -> int | None:
    return v.bound if isinstance(v, Unknown) else 0


def per_item_note(e: ast.Comprehension, usage: Usage) -> str:
    """The note for a fan-out over a list of unknown size: what one item costs."""
    t = usage.total
    hi = "?" if t.calls_max is None else str(t.calls_max)
    calls = f"{t.calls_min}" if hi == str(t.calls_min) else f"{t.calls_min}..{hi}"
    in_hi = "?" if t.input_max is None else f"{t.input_max:,}"
    out_hi = "?" if t.output_max is None else f"{t.output_max:,}"
    kept = " kept by its filter" if e.cond is not None else ""
    return (f"{e.span}: `{show_expr(e)}` runs once per item of a list whose size is unknown "
            f"before the run; per item{kept}: {calls} model call{'' if calls == '1' else 's'}, input "
            f"{t.input_min:,}..{in_hi} tokens, output {t.output_typical:,} typical / {out_hi} max")
