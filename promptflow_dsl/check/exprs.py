"""Static typing of expressions: names, calls, operators, comprehensions.

Every call site is resolved (to a handler key, a built-in or a test counter) and
its arguments checked against the callee's signature; the resolution and the
type of each call are recorded on the :class:`CheckedModule` for later stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lang.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    AnyType,
    DictType,
    Field,
    ListType,
    LiteralType,
    OptionalType,
    RecordType,
    Type,
    explain_mismatch,
    extra_fields,
    is_assignable,
    join,
    optional,
)
from ..syntax import ast
from ..syntax.builder import suggest
from .builtins import BUILTINS, COUNTERS, ArgError
from .constraints import fits
from .env import ModuleEnv
from .files import FILE_BUILTINS, locate
from .program import HandlerInfo, Resolved, Signature


@dataclass
class Scope:
    """Variables visible to an expression, and whether test counters are usable."""

    vars: dict[str, Type] = field(default_factory=dict)
    counters: bool = False
    used: set[str] = field(default_factory=set)
    not_none: frozenset[str] = frozenset()  # paths (`x`, `x.f`) a condition proved not none

    def child(self, extra: dict[str, Type]) -> Scope:
        shadowed = {p for p in self.not_none if p.split(".")[0] in extra}
        return Scope({**self.vars, **extra}, self.counters, self.used, self.not_none - shadowed)

    def narrowed(self, paths: frozenset[str]) -> Scope:
        if not paths:
            return self
        return Scope(self.vars, self.counters, self.used, self.not_none | paths)


def _path(e: ast.Expr) -> str | None:
    if isinstance(e, ast.Name):
        return e.name
    if isinstance(e, ast.Attr):
        base = _path(e.obj)
        return f"{base}.{e.name}" if base else None
    return None


def proven_not_none(cond: ast.Expr, when: bool = True) -> frozenset[str]:
    """Paths that cannot be none where ``cond`` evaluated to ``when``.

    Understands `x != none`, `x == none` (when false), `not c`, `a and b` (when
    true) and `a or b` (when false); anything else proves nothing.
    """
    if isinstance(cond, ast.Compare) and cond.op in ("==", "!="):
        side = cond.left if isinstance(cond.right, ast.NoneLit) else (
            cond.right if isinstance(cond.left, ast.NoneLit) else None)
        p = _path(side) if side is not None else None
        if p and (cond.op == "!=") == when:
            return frozenset({p})
        return frozenset()
    if isinstance(cond, ast.UnaryOp) and cond.op == "not":
        return proven_not_none(cond.operand, not when)
    if isinstance(cond, ast.BoolOp) and (cond.op == "and") == when:
        return proven_not_none(cond.left, when) | proven_not_none(cond.right, when)
    return frozenset()


def _is_number(t: Type) -> bool:
    return isinstance(t, AnyType) or is_assignable(t, FLOAT)


def describe(t: Type) -> str:
    """A type for messages: a single string literal reads as ``str ("x")``."""
    if isinstance(t, LiteralType) and len(t.values) == 1:
        return f"str ({t.show()})"
    return t.show()


def mismatch_note(t: Type, want: Type) -> str:
    """`` (why)`` for a type mismatch, or ``""`` when the reason adds nothing."""
    why = explain_mismatch(t, want)
    if not why or why == f"{t.show()} is not {want.show()}":
        return ""
    return f" ({why})"


def _plain(t: Type) -> str:
    """How an operand's type is named in operator errors: a literal is just a str."""
    return "str" if isinstance(t, LiteralType) else t.show()


def _strip_optional(t: Type) -> Type:
    return t.inner if isinstance(t, OptionalType) else t


def no_common_type(a: Type, b: Type) -> bool:
    """Whether ``join(a, b)`` falls back to ``any`` where neither ``a`` nor ``b`` is ``any``
    (``str`` and ``int``; ``list[str]`` and ``list[int]``; two unrelated records)."""
    if isinstance(a, AnyType) or isinstance(b, AnyType) or a == b or NONE in (a, b):
        return False
    if isinstance(a, OptionalType) or isinstance(b, OptionalType):
        return no_common_type(_strip_optional(a), _strip_optional(b))
    if isinstance(a, LiteralType) and isinstance(b, LiteralType):
        return False
    if isinstance(a, ListType) and isinstance(b, ListType):
        return no_common_type(a.item, b.item)
    if isinstance(a, DictType) and isinstance(b, DictType):
        return no_common_type(a.value, b.value)
    return not (is_assignable(a, b) or is_assignable(b, a))


class ExprChecker:
    def __init__(self, env: ModuleEnv) -> None:
        self.env = env
        self.calls: list[tuple[str, str]] = []  # (handler key, edge kind) seen in this body

    # ------------------------------------------------------------ entry

    def check(self, e: ast.Expr, scope: Scope) -> Type:
        t = self._check(e, scope)
        if isinstance(e, ast.Call):
            self.env.cm.expr_types[e.span] = t
        return t

    def _check(self, e: ast.Expr, scope: Scope) -> Type:
        m = getattr(self, "_" + type(e).__name__, None)
        if m is None:  # pragma: no cover - every node kind has a method
            return ANY
        return m(e, scope)

    # ------------------------------------------------------------ atoms

    def _Str(self, e: ast.Str, scope: Scope) -> Type:
        return LiteralType((e.value,))

    def _Int(self, e: ast.Int, scope: Scope) -> Type:
        return INT

    def _Float(self, e: ast.Float, scope: Scope) -> Type:
        return FLOAT

    def _Bool(self, e: ast.Bool, scope: Scope) -> Type:
        return BOOL

    def _NoneLit(self, e: ast.NoneLit, scope: Scope) -> Type:
        return NONE

    def _Name(self, e: ast.Name, scope: Scope) -> Type:
        if e.name in scope.vars:
            scope.used.add(e.name)
            t = scope.vars[e.name]
            return _strip_optional(t) if e.name in scope.not_none else t
        decl = self.env.values.get(e.name)
        if isinstance(decl, ast.HandlerDecl):
            self.env.err(e.span, f"'{e.name}' is a handler; call it: {e.name}(...)")
        elif isinstance(decl, ast.HookDecl):
            self.env.err(e.span, f"'{e.name}' is a hook; attach it to a prompt with `hooks [{e.name}]`")
        elif isinstance(decl, ast.ImportDecl):
            self.env.err(e.span, f"'{e.name}' is a module; use one of its handlers: {e.name}.NAME(...)")
        else:
            self.env.err(e.span, f"unknown name '{e.name}'{suggest(e.name, list(scope.vars))}")
        return ANY

    def _ListExpr(self, e: ast.ListExpr, scope: Scope) -> Type:
        item: Type | None = None
        for i in e.items:
            t = self.check(i, scope)
            item = t if item is None else join(item, t)
        return ListType(item if item is not None else ANY)

    def _RecordExpr(self, e: ast.RecordExpr, scope: Scope) -> Type:
        fields: dict[str, Field] = {}
        for en in e.entries:  # a duplicate key was reported by the builder; the first wins
            t = self.check(en.value, scope)
            fields.setdefault(en.key, Field(en.key, t, True))
        return RecordType(None, tuple(fields.values()))

    # ------------------------------------------------------------ access

    def _Attr(self, e: ast.Attr, scope: Scope) -> Type:
        if isinstance(e.obj, ast.Name) and e.obj.name not in scope.vars \
                and e.obj.name in self.env.lm.imports:
            self.env.err(e.span, f"'{e.obj.name}.{e.name}' is a handler; call it: "
                                 f"{e.obj.name}.{e.name}(...)")
            return ANY
        t = self.check(e.obj, scope)
        base = _strip_optional(t)
        if isinstance(base, AnyType):
            return ANY
        if isinstance(base, RecordType):
            f = next((f for f in base.fields if f.name == e.name), None)
            if f is None:
                names = [f.name for f in base.fields]
                self.env.err(e.name_span, f"{base.show()} has no field '{e.name}'"
                                          f"{suggest(e.name, names)} (fields: {', '.join(names)})")
                return ANY
            ft = optional(f.type) if isinstance(t, OptionalType) else f.type
            return _strip_optional(ft) if _path(e) in scope.not_none else ft
        if isinstance(base, DictType):
            self.env.err(e.name_span, f"use d[\"{e.name}\"] to read a dict entry")
            return ANY
        self.env.err(e.name_span, f"{t.show()} has no fields (reading '.{e.name}')")
        return ANY

    def _Index(self, e: ast.Index, scope: Scope) -> Type:
        t = _strip_optional(self.check(e.obj, scope))
        it = self.check(e.index, scope)
        if isinstance(t, AnyType):
            return ANY
        if isinstance(t, ListType) or is_assignable(t, STR):
            if not is_assignable(it, INT):
                self.env.err(e.index.span, f"index must be int, got {it.show()}")
            return t.item if isinstance(t, ListType) else STR
        if isinstance(t, DictType):
            if not is_assignable(it, STR):
                self.env.err(e.index.span, f"dict key must be str, got {it.show()}")
            return t.value
        if isinstance(t, RecordType) and isinstance(e.index, ast.Str):
            f = next((f for f in t.fields if f.name == e.index.value), None)
            if f is None:
                self.env.err(e.index.span, f"{t.show()} has no field '{e.index.value}'")
                return ANY
            return f.type
        self.env.err(e.span, f"{t.show()} cannot be indexed")
        return ANY

    # ------------------------------------------------------------ operators

    def _BinOp(self, e: ast.BinOp, scope: Scope) -> Type:
        lt, rt = self.check(e.left, scope), self.check(e.right, scope)
        if isinstance(lt, AnyType) or isinstance(rt, AnyType):
            return ANY
        if e.op == "+":
            if is_assignable(lt, STR) and is_assignable(rt, STR):
                return STR
            if isinstance(lt, ListType) and isinstance(rt, ListType):
                return ListType(join(lt.item, rt.item))
        if _is_number(lt) and _is_number(rt):
            if e.op == "/":
                return FLOAT
            return INT if (is_assignable(lt, INT) and is_assignable(rt, INT)) else FLOAT
        self.env.err(e.span, f"cannot apply '{e.op}' to {_plain(lt)} and {_plain(rt)}")
        return ANY

    def _UnaryOp(self, e: ast.UnaryOp, scope: Scope) -> Type:
        t = self.check(e.operand, scope)
        if e.op == "not":
            return BOOL
        if not _is_number(t):
            self.env.err(e.span, f"cannot negate {_plain(t)}")
            return ANY
        return t

    def _BoolOp(self, e: ast.BoolOp, scope: Scope) -> Type:
        lt = self.check(e.left, scope)
        rt = self.check(e.right, scope.narrowed(proven_not_none(e.left, e.op == "and")))
        return BOOL if (lt == BOOL and rt == BOOL) else join(lt, rt)

    def _Compare(self, e: ast.Compare, scope: Scope) -> Type:
        lt, rt = self.check(e.left, scope), self.check(e.right, scope)
        op = e.op
        if op in ("==", "!="):
            if isinstance(lt, LiteralType) and isinstance(rt, LiteralType) \
                    and not set(lt.values) & set(rt.values):
                verdict = "never" if op == "==" else "always"
                self.env.warn(e.span, f"{op} is {verdict} true: {lt.show()} vs {rt.show()}")
        elif op in ("<", ">", "<=", ">="):
            ok = (_is_number(lt) and _is_number(rt)) or (is_assignable(lt, STR) and is_assignable(rt, STR))
            if not ok and not (isinstance(lt, AnyType) or isinstance(rt, AnyType)):
                self.env.err(e.span, f"cannot compare {_plain(lt)} {op} {_plain(rt)}")
        else:  # in, not in, contains
            container, item = (rt, lt) if op in ("in", "not in") else (lt, rt)
            self._membership(e, container, item)
        return BOOL

    def _membership(self, e: ast.Compare, container: Type, item: Type) -> None:
        c = _strip_optional(container)
        if isinstance(c, AnyType) or isinstance(item, AnyType):
            return
        if is_assignable(c, STR):
            if not is_assignable(item, STR):
                self.env.err(e.span, f"'{e.op}' on text needs a str, got {item.show()}")
        elif isinstance(c, (ListType, DictType)):
            return
        else:
            self.env.err(e.span, f"'{e.op}' needs a str, list or dict, got {container.show()}")

    def _Conditional(self, e: ast.Conditional, scope: Scope) -> Type:
        self.check(e.cond, scope)
        then = self.check(e.then, scope.narrowed(proven_not_none(e.cond, True)))
        orelse = self.check(e.orelse, scope.narrowed(proven_not_none(e.cond, False)))
        return join(then, orelse)

    def _Try(self, e: ast.Try, scope: Scope) -> Type:
        tried = self.check(e.expr, scope)
        fallback = self.check(e.fallback, scope)
        if is_assignable(fallback, tried):
            result = tried
        elif no_common_type(tried, fallback):
            self.env.err(e.fallback.span, f"the fallback of `try` must fit {tried.show()} (the type "
                                          f"of the tried expression), got {describe(fallback)}"
                                          f"{mismatch_note(fallback, tried)}")
            return tried
        else:  # `none` makes it optional; literal unions merge; int and float give float
            result = join(tried, fallback)
        base = _strip_optional(result)
        if isinstance(e.fallback, ast.RecordExpr) and isinstance(fallback, RecordType) \
                and isinstance(base, RecordType):
            for extra in extra_fields(fallback, base):
                self.env.err(e.fallback.span, f"field '{extra}' of the fallback is not in "
                                              f"{base.show()} (the type of the tried expression)")
        return result

    def _Comprehension(self, e: ast.Comprehension, scope: Scope) -> Type:
        it = self.check(e.iter, scope)
        base = _strip_optional(it)
        if isinstance(base, ListType):
            item = base.item
        elif isinstance(base, AnyType):
            item = ANY
        elif isinstance(base, DictType):
            item = STR
        else:
            self.env.err(e.iter.span, f"a comprehension needs a list, got {it.show()}")
            item = ANY
        inner = scope.child({e.var: item})
        if e.cond is not None:
            self.check(e.cond, inner)
            inner = inner.narrowed(proven_not_none(e.cond, True))
        out = ListType(self.check(e.elt, inner))
        return out

    # ------------------------------------------------------------ calls

    def _Call(self, e: ast.Call, scope: Scope) -> Type:
        target = self.resolve_callee(e.func, scope)
        if target is None:
            if not (isinstance(e.func, ast.Name) and e.func.name in COUNTERS):
                for a in (*e.args, *(k.value for k in e.kwargs)):
                    self.check(a, scope)
            return ANY
        kind, obj = target
        if kind == "counter":
            return self._counter(e, obj)
        if kind == "builtin":
            return self._builtin(e, obj, scope)
        assert isinstance(obj, HandlerInfo)
        h = obj
        self.env.cm.resolutions[e.span] = Resolved("handler", h.key)
        self.calls.append((h.key, "call"))
        self.bind(e, h.signature, self._callee_name(e.func), scope)
        return h.signature.returns

    def _callee_name(self, func: ast.Expr) -> str:
        if isinstance(func, ast.Name):
            return func.name
        if isinstance(func, ast.Attr) and isinstance(func.obj, ast.Name):
            return f"{func.obj.name}.{func.name}"
        return "this function"

    def resolve_callee(self, func: ast.Expr, scope: Scope) -> tuple[str, object] | None:
        """What a call's function expression names: ("handler", HandlerInfo), ("builtin", Builtin)
        or ("counter", name); ``None`` (after reporting) when it names nothing callable."""
        env = self.env
        if isinstance(func, ast.Name):
            n = func.name
            if n in scope.vars:
                env.err(func.span, f"'{n}' is a variable, not a handler")
                return None
            if n in env.cm.handlers:
                return "handler", env.cm.handlers[n]
            decl = env.values.get(n)
            if isinstance(decl, ast.HookDecl):
                env.err(func.span, f"'{n}' is a hook and cannot be called; attach it to a prompt "
                                   f"with `hooks [{n}]`")
                return None
            if isinstance(decl, ast.ImportDecl):
                env.err(func.span, f"'{n}' is a module; call one of its handlers: {n}.NAME(...)")
                return None
            if isinstance(decl, ast.HandlerDecl):  # declared but its signature failed
                return None
            if scope.counters and n in COUNTERS:
                return "counter", n
            if n in BUILTINS:
                return "builtin", BUILTINS[n]
            options = list(env.cm.handlers) + list(BUILTINS) + (list(COUNTERS) if scope.counters else [])
            hint = suggest(n, options)
            if not hint and n in COUNTERS:
                what = "evaluate()" if COUNTERS[n][0] == "eval" else "counters"
                hint = f" ({what} {'is' if what[0] == 'e' else 'are'} only available inside test blocks)"
            env.err(func.span, f"unknown handler or function '{n}'{hint}")
            return None
        if isinstance(func, ast.Attr) and isinstance(func.obj, ast.Name):
            alias = func.obj.name
            if alias not in scope.vars:
                h = env.handler_by_ref(ast.Ref(func.span, (alias, func.name)), "in call")
                return ("handler", h) if h is not None else None
            if alias in env.lm.imports:
                env.err(func.obj.span, f"'{alias}' here is a variable, which hides the imported "
                                       f"module '{alias}'; rename the variable")
                return None
        env.err(func.span, "only handlers and built-in functions can be called")
        return None

    def bind(self, e: ast.Call, sig: Signature, name: str, scope: Scope) -> None:
        """Check a call's arguments against ``sig``: count, names, defaults and types."""
        env = self.env
        bound: dict[str, ast.Expr] = {}
        params = sig.params
        for i, a in enumerate(e.args):
            if i >= len(params):
                env.err(a.span, f"too many arguments: {name} takes {len(params)}")
                self.check(a, scope)
                continue
            bound[params[i].name] = a
        for kw in e.kwargs:
            p = sig.param(kw.name)
            if p is None:
                names = [p.name for p in params]
                env.err(kw.span, f"{name} has no parameter '{kw.name}'{suggest(kw.name, names)}"
                                 f" (parameters: {', '.join(names) or 'none'})")
                self.check(kw.value, scope)
                continue
            if kw.name in bound:
                env.err(kw.span, f"argument '{kw.name}' given twice")
                self.check(kw.value, scope)
                continue
            bound[kw.name] = kw.value
        missing = [p.name for p in params if p.required and p.name not in bound]
        if missing and not e.malformed:
            s = "s" if len(missing) > 1 else ""
            env.err(e.span, f"missing argument{s} {', '.join(repr(m) for m in missing)} "
                            f"in call to {name}")
        for p in params:
            arg = bound.get(p.name)
            if arg is None:
                continue
            t = self.check(arg, scope)
            if fits(env, arg, p.type, f"argument '{p.name}' of {name}") \
                    and not is_assignable(t, p.type):
                env.err(arg.span, f"argument '{p.name}' of {name} expects {p.type.show()}, "
                                  f"got {describe(t)}{mismatch_note(t, p.type)}")

    def _builtin(self, e: ast.Call, b: object, scope: Scope) -> Type:
        from .builtins import Builtin

        assert isinstance(b, Builtin)
        self.env.cm.resolutions[e.span] = Resolved("builtin", b.name)
        args: list[ast.Expr | None] = [None] * len(b.params)
        ok = True
        for i, a in enumerate(e.args):
            if i >= len(b.params):
                self.env.err(a.span, f"too many arguments: {b.show()}")
                ok = False
            else:
                args[i] = a
        for kw in e.kwargs:
            if kw.name not in b.params:
                self.env.err(kw.span, f"{b.name}() has no parameter '{kw.name}' ({b.show()})")
                ok = False
                continue
            i = b.params.index(kw.name)
            if args[i] is not None:
                self.env.err(kw.span, f"argument '{kw.name}' given twice")
                ok = False
            args[i] = kw.value
        given = [a for a in args if a is not None]
        types = [self.check(a, scope) for a in given]
        if any(a is None for a in args[: b.required]):
            self.env.err(e.span, f"missing argument in call to {b.show()}")
            return ANY
        if not ok:
            return ANY
        try:
            result = b.rule(types)
        except ArgError as exc:
            self.env.err(given[exc.index].span, f"{b.name}() {exc}")
            return ANY
        if b.name in FILE_BUILTINS and isinstance(args[0], ast.Str):  # else checked at run time
            _, diag = locate(self.env.project, self.env.path, args[0].value, args[0].span)
            if diag is not None:
                self.env.err(diag.span, f"{b.name}(): {diag.message}")
        return result

    def _counter(self, e: ast.Call, name: object) -> Type:
        assert isinstance(name, str)
        what, result = COUNTERS[name]
        if what == "eval":
            from .evals import check_evaluate

            return check_evaluate(self.env, e)
        if len(e.args) != 1 or e.kwargs:
            self.env.err(e.span, f"{name}() takes one {what} name, e.g. {name}(my_{what})")
            return result
        arg = e.args[0]
        ref = _as_ref(arg)
        if ref is None:
            self.env.err(arg.span, f"{name}() takes the name of a {what}")
            return result
        if what == "hook":
            hk = self.env.hook_by_ref(ref)
            if hk is not None:
                self.env.cm.resolutions[e.span] = Resolved("counter", hk.key)
            return result
        h = self.env.handler_by_ref(ref, f"in {name}()")
        if h is not None:
            if what == "route" and h.kind != "route":
                self.env.err(arg.span, f"routed() takes a route, and '{ref.dotted}' is a {h.kind}")
            self.env.cm.resolutions[e.span] = Resolved("counter", h.key)
        return result


def _as_ref(e: ast.Expr) -> ast.Ref | None:
    if isinstance(e, ast.Name):
        return ast.Ref(e.span, (e.name,))
    if isinstance(e, ast.Attr) and isinstance(e.obj, ast.Name):
        return ast.Ref(e.span, (e.obj.name, e.name))
    return None


def free_names(e: ast.Expr) -> list[ast.Name]:
    """Every variable name an expression reads (comprehension variables excluded)."""
    out: list[ast.Name] = []
    stack: list[tuple[ast.Expr, frozenset[str]]] = [(e, frozenset())]
    while stack:
        node, bound = stack.pop()
        if isinstance(node, ast.Name):
            if node.name not in bound:
                out.append(node)
        elif isinstance(node, ast.Comprehension):
            stack.append((node.iter, bound))
            inner = bound | {node.var}
            stack.append((node.elt, inner))
            if node.cond is not None:
                stack.append((node.cond, inner))
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, (ast.Name,)) and not (
                    isinstance(node.func, ast.Attr) and isinstance(node.func.obj, ast.Name)):
                stack.append((node.func, bound))
            stack.extend((a, bound) for a in node.args)
            stack.extend((k.value, bound) for k in node.kwargs)
        elif isinstance(node, ast.Attr):
            stack.append((node.obj, bound))
        elif isinstance(node, ast.Index):
            stack.extend([(node.obj, bound), (node.index, bound)])
        elif isinstance(node, ast.ListExpr):
            stack.extend((i, bound) for i in node.items)
        elif isinstance(node, ast.RecordExpr):
            stack.extend((en.value, bound) for en in node.entries)
        elif isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare)):
            stack.extend([(node.left, bound), (node.right, bound)])
        elif isinstance(node, ast.UnaryOp):
            stack.append((node.operand, bound))
        elif isinstance(node, ast.Conditional):
            stack.extend([(node.then, bound), (node.cond, bound), (node.orelse, bound)])
        elif isinstance(node, ast.Try):
            stack.extend([(node.expr, bound), (node.fallback, bound)])
    return out
