"""Evaluation of flow expressions at run time.

An :class:`Evaluator` computes one expression in an environment of variable
values.  Handler calls go to the run context (which renders prompts, calls
models and tools); their arguments are evaluated concurrently, a comprehension
runs its items concurrently (a fan-out), and a conditional evaluates only the
side it takes.  Built-in functions behave like their Python counterparts.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..check.files import FILE_BUILTINS, FileProblem, locate, read_jsonl_file, read_text_file
from ..check.loader import Project
from ..check.program import CheckedModule, Resolved
from ..lang import jsondata
from ..lang.values import dumps, plain
from ..syntax import ast
from .errors import RunError, ScriptRefused

if TYPE_CHECKING:  # pragma: no cover
    from .context import RunContext


def _truthy(v: Any) -> bool:
    return bool(v)


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (dict, list)):
        return dumps(v)
    return str(v)


def _b_join(items: Any, sep: Any) -> str:
    return str(sep).join(_text(i) for i in items)


def _b_int(v: Any) -> int:
    if isinstance(v, str):
        v = v.strip()
        try:
            return int(v)
        except ValueError:
            f = float(v)
            if not f.is_integer():
                raise ValueError(f"cannot convert {v!r} to int") from None
            return int(f)
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"cannot convert {v} to int")
    return int(v)


def _b_float(v: Any) -> float:
    return float(v.strip()) if isinstance(v, str) else float(v)


def _b_split(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep) if sep not in (None, "") else text.split()


def _b_flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for i in items:
        if isinstance(i, list):
            out.extend(i)
        else:
            out.append(i)
    return out


def _b_unique(items: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for i in items:
        k = dumps(i)
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


def _b_parse_json(text: str) -> Any:
    try:
        return jsondata.loads(text)  # bounded: nesting, integer digits, lone surrogates
    except jsondata.NotJSONData as exc:
        raise ValueError(f"not valid JSON data: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


BUILTIN_IMPLS: dict[str, Callable[..., Any]] = {
    "join": _b_join, "len": len, "str": _text, "int": _b_int, "float": _b_float, "json": dumps,
    "parse_json": _b_parse_json, "lower": lambda t: t.lower(), "upper": lambda t: t.upper(),
    "strip": lambda t: t.strip(), "split": _b_split, "flatten": _b_flatten, "unique": _b_unique,
}


def _settled(results: list[Any]) -> list[Any]:
    """The results of parts evaluated together, or the first failure in written order
    (raised once every part has finished, so none keeps running after a fallback)."""
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        return _text(item) in container
    if isinstance(container, dict):
        return item in container
    return plain(item) in plain(container)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: plain(a) == plain(b), "!=": lambda a, b: plain(a) != plain(b),
    "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "in": lambda a, b: _contains(b, a), "not in": lambda a, b: not _contains(b, a),
    "contains": _contains,
}


class Evaluator:
    """Evaluates expressions of one module; ``ctx`` performs handler calls."""

    def __init__(self, ctx: RunContext, module: CheckedModule, caller: str | None = None) -> None:
        self.ctx = ctx
        self.module = module
        self.caller = caller  # trace step id of the flow being evaluated

    def fail(self, e: ast.Node, message: str) -> RunError:
        return RunError(message, span=e.span)

    async def eval(self, e: ast.Expr, env: dict[str, Any]) -> Any:
        m = getattr(self, "_" + type(e).__name__)
        return await m(e, env)

    async def _all(self, exprs: list[ast.Expr], env: dict[str, Any]) -> list[Any]:
        if self.ctx.sequential or len(exprs) < 2:
            return [await self.eval(x, env) for x in exprs]
        return _settled(await asyncio.gather(*(self.eval(x, env) for x in exprs),
                                             return_exceptions=True))

    # ------------------------------------------------------------ atoms

    async def _Str(self, e: ast.Str, env: dict[str, Any]) -> Any:
        return e.value

    async def _Int(self, e: ast.Int, env: dict[str, Any]) -> Any:
        return e.value

    async def _Float(self, e: ast.Float, env: dict[str, Any]) -> Any:
        return e.value

    async def _Bool(self, e: ast.Bool, env: dict[str, Any]) -> Any:
        return e.value

    async def _NoneLit(self, e: ast.NoneLit, env: dict[str, Any]) -> Any:
        return None

    async def _Name(self, e: ast.Name, env: dict[str, Any]) -> Any:
        if e.name not in env:
            raise self.fail(e, f"'{e.name}' has no value")
        return env[e.name]

    async def _ListExpr(self, e: ast.ListExpr, env: dict[str, Any]) -> Any:
        return await self._all(list(e.items), env)

    async def _RecordExpr(self, e: ast.RecordExpr, env: dict[str, Any]) -> Any:
        values = await self._all([en.value for en in e.entries], env)
        out: dict[str, Any] = {}
        for en, v in zip(e.entries, values, strict=True):
            out.setdefault(en.key, v)
        return out

    async def _Attr(self, e: ast.Attr, env: dict[str, Any]) -> Any:
        obj = await self.eval(e.obj, env)
        if isinstance(obj, dict):
            return obj.get(e.name)
        if obj is None:
            raise self.fail(e, f"cannot read '.{e.name}': the value is none")
        raise self.fail(e, f"cannot read '.{e.name}' of a {type(obj).__name__}")

    async def _Index(self, e: ast.Index, env: dict[str, Any]) -> Any:
        obj, idx = await self._all([e.obj, e.index], env)
        try:
            return obj[idx]
        except (IndexError, KeyError):
            raise self.fail(e, f"index {dumps(idx)} is out of range") from None
        except TypeError:
            raise self.fail(e, f"cannot index a {type(obj).__name__} with {dumps(idx)}") from None

    # ------------------------------------------------------------ operators

    async def _BinOp(self, e: ast.BinOp, env: dict[str, Any]) -> Any:
        a, b = await self._all([e.left, e.right], env)
        try:
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":
                return a / b
            return a % b
        except ZeroDivisionError:
            raise self.fail(e, "division by zero") from None
        except TypeError:
            raise self.fail(e, f"cannot apply '{e.op}' to {type(a).__name__} and "
                               f"{type(b).__name__}") from None

    async def _UnaryOp(self, e: ast.UnaryOp, env: dict[str, Any]) -> Any:
        v = await self.eval(e.operand, env)
        if e.op == "not":
            return not _truthy(v)
        try:
            return -v
        except TypeError:
            raise self.fail(e, f"cannot negate a {type(v).__name__}") from None

    async def _BoolOp(self, e: ast.BoolOp, env: dict[str, Any]) -> Any:
        left = await self.eval(e.left, env)
        if e.op == "and":
            return await self.eval(e.right, env) if _truthy(left) else left
        return left if _truthy(left) else await self.eval(e.right, env)

    async def _Compare(self, e: ast.Compare, env: dict[str, Any]) -> Any:
        a, b = await self._all([e.left, e.right], env)
        try:
            return bool(_COMPARE[e.op](a, b))
        except TypeError:
            raise self.fail(e, f"cannot compare {type(a).__name__} {e.op} "
                               f"{type(b).__name__}") from None

    async def _Conditional(self, e: ast.Conditional, env: dict[str, Any]) -> Any:
        cond = await self.eval(e.cond, env)
        return await self.eval(e.then if _truthy(cond) else e.orelse, env)

    async def _Try(self, e: ast.Try, env: dict[str, Any]) -> Any:
        try:
            return await self.eval(e.expr, env)
        except ScriptRefused:  # a test's mocks do not cover the call: not the program's failure
            raise
        except RunError as exc:
            step = self.ctx.trace.get(self.caller) if self.caller is not None else None
            if step is not None:
                self.ctx.trace.event(step, "try", f"fell back: {exc.message}", line=e.span.line,
                                     handler=exc.handler)
        return await self.eval(e.fallback, env)

    async def _Comprehension(self, e: ast.Comprehension, env: dict[str, Any]) -> Any:
        items = await self.eval(e.iter, env)
        if isinstance(items, dict):
            items = list(items)
        if items is None:
            raise self.fail(e.iter, "cannot iterate over none")

        async def one(item: Any) -> tuple[bool, Any]:
            inner = {**env, e.var: item}
            if e.cond is not None and not _truthy(await self.eval(e.cond, inner)):
                return False, None
            return True, await self.eval(e.elt, inner)

        if self.ctx.sequential:
            results = [await one(i) for i in items]
        else:
            results = _settled(await asyncio.gather(*(one(i) for i in items),
                                                    return_exceptions=True))
        return [v for keep, v in results if keep]

    # ------------------------------------------------------------ calls

    async def _Call(self, e: ast.Call, env: dict[str, Any]) -> Any:
        res = self.module.resolutions.get(e.span)
        if res is None:
            raise self.fail(e, "call was not resolved by the checker")
        if res.kind == "counter":
            return self.ctx.counter(e, res)
        names = [None] * len(e.args) + [k.name for k in e.kwargs]
        values = await self._all([*e.args, *(k.value for k in e.kwargs)], env)
        if res.kind == "builtin":
            if res.target in FILE_BUILTINS:
                return await self._read_file(e, res.target, values[0])
            return self._builtin(e, res, values, names)
        return await self.ctx.call_by_position(res.target, values, names, call=e, caller=self.caller,
                                               module=self.module)

    async def _read_file(self, e: ast.Call, name: str, rel: Any) -> Any:
        """``read_text`` / ``read_jsonl``: the path obeys the checker's rules for a literal one."""
        if not isinstance(rel, str):
            raise self.fail(e, f"{name}() failed: the path must be a str, got {dumps(rel)}")
        program = self.ctx.program
        folder = self.module.path.parent if self.module.path is not None else Path.cwd()
        project = Project(program.root or folder, program.allowed)
        path, diag = locate(project, self.module.path, rel, e.span)
        if path is None:
            raise self.fail(e, f"{name}() failed: {diag.message if diag else rel}")
        reader = read_text_file if name == "read_text" else read_jsonl_file
        try:
            return await asyncio.to_thread(reader, path)
        except FileProblem as exc:
            raise self.fail(e, f"{name}() failed: {exc}") from None

    def _builtin(self, e: ast.Call, res: Resolved, values: list[Any], names: list[str | None]) -> Any:
        from ..check.builtins import BUILTINS

        spec = BUILTINS[res.target]
        by_name: dict[str, Any] = {}
        for v, n in zip(values, names, strict=True):
            by_name[n or spec.params[len(by_name)]] = v
        args = [by_name[p] for p in spec.params if p in by_name]  # the checker ruled out gaps
        try:
            return BUILTIN_IMPLS[res.target](*args)
        except (TypeError, ValueError, AttributeError) as exc:
            raise self.fail(e, f"{res.target}() failed: {exc}") from None
