"""The build stage: grammar rules → :class:`ast.Module`.

The parser calls a method of :class:`Builder` for each rule it reduces
(:mod:`.reducer`; no parse tree is made, and nothing recurses, so deep input never
overflows the Python stack), which turns the rule into a frozen AST node with its span.  Structural
problems the grammar leaves open — unknown or repeated clauses, a clause value
of the wrong shape, a positional argument after a keyword one, expressions
nested absurdly deep — are collected as diagnostics rather than raised.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from typing import Any

from lark import Token

from ..diagnostics import Diagnostic, Span, error, warning
from ..kinds import registry
from . import ast
from .clauses import Clause, ClauseSet, apply_clauses, has_clause
from .source import shown_path
from .strings import StringError, decode_plain, decode_raw, decode_text

MAX_DEPTH = 100

#: the most digits an integer literal may have (Python's own limit on converting text
#: to an integer; a longer literal is an error, never a crash)
MAX_INT_DIGITS = 4300


class DepthExceeded(Exception):
    def __init__(self, span: Span) -> None:
        super().__init__("nested too deeply")
        self.span = span


@dataclass(frozen=True)
class _Marker:
    kind: str
    value: Any = None
    span: Span | None = None


def _pos(tok: Token) -> tuple[int, int]:
    """Line and column of a token the parser made (the lexer always sets them)."""
    assert tok.line is not None and tok.column is not None
    return tok.line, tok.column


def _tok_span(file: str, tok: Token) -> Span:
    line, col = _pos(tok)
    end_line = tok.end_line if tok.end_line is not None else line
    end_col = tok.end_column if tok.end_column is not None else col + len(tok.value)
    return Span(file, line, col, end_line, end_col)


class Builder:
    """Builds one module; ``diagnostics`` collects the structural problems found.

    Each method named for a grammar rule (or its ``-> alias``) takes ``meta`` (the
    rule's position: ``line``, ``column``, ``end_line``, ``end_column``, ``empty``) and
    the rule's children, already built, and returns what the rule builds.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.diagnostics: list[Diagnostic] = []
        self._depth: dict[int, int] = {}

    # ------------------------------------------------------------ helpers

    def _span(self, meta: Any, children: list[Any] | None = None) -> Span:
        if not getattr(meta, "empty", True):
            return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)
        for ch in children or ():
            if isinstance(ch, Token) and ch.line is not None:
                return _tok_span(self.file, ch)
            if isinstance(ch, ast.Node):
                return ch.span
        return Span.point(self.file, 1, 1)

    def _ts(self, tok: Token) -> Span:
        return _tok_span(self.file, tok)

    def _err(self, span: Span, msg: str) -> None:
        self.diagnostics.append(error(span, msg))

    def _name(self, tok: Token, what: str) -> str:
        """The text of a name token that declares something; reserved words are refused."""
        name = str(tok.value)
        if name in KEYWORDS:
            self._err(self._ts(tok), f"'{name}' is a reserved word and cannot name a {what}")
        return name

    def _track(self, node: Any, *children: Any) -> Any:
        depth = 1
        for ch in children:
            if ch is not None:
                depth = max(depth, self._depth.get(id(ch), 0) + 1)
        if depth > MAX_DEPTH:
            raise DepthExceeded(node.span)
        self._depth[id(node)] = depth
        return node

    # ------------------------------------------------------------ module

    def start(self, meta: Any, children: list[Any]) -> ast.Module:
        decls = tuple(c for c in children if isinstance(c, ast.Decl))
        span = self._span(meta) if not meta.empty else Span.point(self.file, 1, 1)
        return ast.Module(span, self.file, decls)

    # ------------------------------------------------------------ strings

    def string(self, meta: Any, children: list[Any]) -> ast.Str:
        tok: Token = children[0]
        span = self._ts(tok)
        text = str(tok.value)
        line, col = _pos(tok)
        if tok.type == "LONG_STRING":
            value, origins = decode_text(text, line, col)
            return ast.Str(span, value, "text", origins)
        if tok.type == "RAW_STRING":
            return ast.Str(span, decode_raw(text), "raw", ((line, col + 2),))
        return self._plain(tok)

    def _plain(self, tok: Token) -> ast.Str:
        span = self._ts(tok)
        line, col = _pos(tok)
        try:
            value, notes = decode_plain(str(tok.value))
        except StringError as exc:
            where = span
            if exc.offset is not None and line == tok.end_line:
                where = Span.point(self.file, line, col + 1 + exc.offset, exc.length)
            self._err(where, str(exc))
            value, notes = str(tok.value)[1:-1], []
        for note in notes:
            self.diagnostics.append(warning(span, note))
        return ast.Str(span, value, "plain", ((line, col + 1),))

    # ------------------------------------------------------------ atoms

    def name(self, meta: Any, children: list[Any]) -> ast.Name:
        tok = children[0]
        return self._track(ast.Name(self._ts(tok), str(tok.value)))

    def int_lit(self, meta: Any, children: list[Any]) -> ast.Int:
        tok = children[0]
        return self._track(ast.Int(self._ts(tok), self.int_value(tok)))

    def int_value(self, tok: Token) -> int:
        """The value of an ``INT`` token; a literal of more than :data:`MAX_INT_DIGITS`
        digits is reported at the token and read as 0 (never raises)."""
        text = str(tok.value)
        if len(text) > MAX_INT_DIGITS:
            self._err(self._ts(tok), f"integer literal too long ({len(text)} digits; at most "
                                     f"{MAX_INT_DIGITS})")
            return 0
        return int(text)

    def float_lit(self, meta: Any, children: list[Any]) -> ast.Float:
        tok = children[0]
        return self._track(ast.Float(self._ts(tok), float(tok.value)))

    def true(self, meta: Any, children: list[Any]) -> ast.Bool:
        return self._track(ast.Bool(self._span(meta), True))

    def false(self, meta: Any, children: list[Any]) -> ast.Bool:
        return self._track(ast.Bool(self._span(meta), False))

    def none(self, meta: Any, children: list[Any]) -> ast.NoneLit:
        return self._track(ast.NoneLit(self._span(meta)))

    def list_lit(self, meta: Any, children: list[Any]) -> ast.ListExpr:
        return self._track(ast.ListExpr(self._span(meta), tuple(children)), *children)

    def comprehension(self, meta: Any, children: list[Any]) -> ast.Comprehension:
        elt, var, it = children[0], children[1], children[2]
        cond = children[4] if len(children) > 4 else None
        node = ast.Comprehension(self._span(meta), elt, self._name(var, "variable"), self._ts(var),
                                 it, cond)
        return self._track(node, elt, it, cond)

    def entry(self, meta: Any, children: list[Any]) -> ast.RecordEntry:
        key_tok, value = children
        key = str(key_tok.value) if key_tok.type == "NAME" else self._plain(key_tok).value
        return self._track(ast.RecordEntry(self._span(meta), key, value), value)

    def record(self, meta: Any, children: list[Any]) -> ast.RecordExpr:
        seen: dict[str, ast.RecordEntry] = {}
        for e in children:
            if e.key in seen:
                self._err(e.span, f"duplicate key '{e.key}' in record")
            seen[e.key] = e
        return self._track(ast.RecordExpr(self._span(meta), tuple(children)), *children)

    # ------------------------------------------------------------ postfix

    def call(self, meta: Any, children: list[Any]) -> ast.Call:
        func, rest = children[0], children[1:]
        args: list[ast.Expr] = []
        kwargs: list[ast.Keyword] = []
        malformed = False
        for a in rest:
            if isinstance(a, ast.Keyword):
                kwargs.append(a)
            else:
                if kwargs:
                    self._err(a.span, "positional argument after a keyword argument")
                    malformed = True
                    continue
                args.append(a)
        node = ast.Call(self._span(meta), func, tuple(args), tuple(kwargs), malformed)
        return self._track(node, func, *rest)

    def kwarg(self, meta: Any, children: list[Any]) -> ast.Keyword:
        tok, value = children
        return self._track(ast.Keyword(self._span(meta), str(tok.value), value), value)

    def attr(self, meta: Any, children: list[Any]) -> ast.Attr:
        obj, tok = children
        return self._track(ast.Attr(self._span(meta), obj, str(tok.value), self._ts(tok)), obj)

    def index(self, meta: Any, children: list[Any]) -> ast.Index:
        obj, idx = children
        return self._track(ast.Index(self._span(meta), obj, idx), obj, idx)

    # ------------------------------------------------------------ operators

    def _bin(self, cls: type, op: str, meta: Any, children: list[Any]) -> Any:
        left, right = children
        return self._track(cls(self._span(meta), op, left, right), left, right)

    def add(self, meta: Any, c: list[Any]) -> ast.BinOp:
        return self._bin(ast.BinOp, "+", meta, c)

    def sub(self, meta: Any, c: list[Any]) -> ast.BinOp:
        return self._bin(ast.BinOp, "-", meta, c)

    def mul(self, meta: Any, c: list[Any]) -> ast.BinOp:
        return self._bin(ast.BinOp, "*", meta, c)

    def div(self, meta: Any, c: list[Any]) -> ast.BinOp:
        return self._bin(ast.BinOp, "/", meta, c)

    def mod(self, meta: Any, c: list[Any]) -> ast.BinOp:
        return self._bin(ast.BinOp, "%", meta, c)

    def and_op(self, meta: Any, c: list[Any]) -> ast.BoolOp:
        return self._bin(ast.BoolOp, "and", meta, c)

    def or_op(self, meta: Any, c: list[Any]) -> ast.BoolOp:
        return self._bin(ast.BoolOp, "or", meta, c)

    def comp_op(self, meta: Any, children: list[Any]) -> str:
        return " ".join(str(t.value) for t in children)

    def compare(self, meta: Any, children: list[Any]) -> ast.Compare:
        left, op, right = children
        return self._track(ast.Compare(self._span(meta), op, left, right), left, right)

    def neg(self, meta: Any, children: list[Any]) -> ast.Expr:
        (x,) = children
        if isinstance(x, ast.Int) and x.span.line == meta.line:
            return self._track(ast.Int(self._span(meta), -x.value))
        if isinstance(x, ast.Float) and x.span.line == meta.line:
            return self._track(ast.Float(self._span(meta), -x.value))
        return self._track(ast.UnaryOp(self._span(meta), "-", x), x)

    def not_op(self, meta: Any, children: list[Any]) -> ast.UnaryOp:
        (x,) = children
        return self._track(ast.UnaryOp(self._span(meta), "not", x), x)

    def conditional(self, meta: Any, children: list[Any]) -> ast.Conditional:
        then, _if, cond, orelse = children
        node = ast.Conditional(self._span(meta), then, cond, orelse)
        return self._track(node, then, cond, orelse)

    def try_expr(self, meta: Any, children: list[Any]) -> ast.Try:
        expr, fallback = children
        return self._track(ast.Try(self._span(meta), expr, fallback), expr, fallback)

    # ------------------------------------------------------------ types

    def dotted(self, meta: Any, children: list[Any]) -> ast.Ref:
        return ast.Ref(self._span(meta), tuple(str(t.value) for t in children))

    def named_type(self, meta: Any, children: list[Any]) -> ast.NamedType:
        ref: ast.Ref = children[0]
        return self._track(ast.NamedType(ref.span, ref.dotted))

    def generic_type(self, meta: Any, children: list[Any]) -> ast.TypeExpr:
        tok, args = children[0], children[1:]
        span = self._span(meta)
        name = str(tok.value)
        if name == "list":
            if len(args) != 1:
                self._err(span, f"list takes one type argument, got {len(args)}: write list[T]")
            return self._track(ast.ListType(span, args[0]), *args)
        if name == "dict":
            if len(args) != 2:
                self._err(span, f"dict takes two type arguments, got {len(args)}: write dict[str, T]")
                key, value = ast.NamedType(span, "str"), args[-1]
            else:
                key, value = args
            return self._track(ast.DictType(span, key, value), *args)
        self._err(self._ts(tok), f"'{name}' takes no type arguments; only list[T] and dict[str, T] do")
        return self._track(ast.NamedType(self._ts(tok), name))

    def type_args(self, meta: Any, children: list[Any]) -> _Marker:
        args: list[ast.ConstraintArg] = []
        for a in children:
            if isinstance(a, ast.Keyword):
                args.append(ast.ConstraintArg(a.span, a.name, a.value))
            else:
                self._err(a.span, "a constraint is written NAME=VALUE, e.g. str(max_length=200) "
                                  "or int(min=1, max=5)")
        if not children:
            self._err(self._span(meta), "empty constraints: write them, e.g. str(max_length=200), "
                                        "or drop the parentheses")
        return _Marker("type_args", tuple(args), self._span(meta))

    def constrained_type(self, meta: Any, children: list[Any]) -> ast.TypeExpr:
        tok, marker = children
        base = self._track(ast.NamedType(self._ts(tok), str(tok.value)))
        return self._constrained(meta, base, marker)

    def constrained_generic(self, meta: Any, children: list[Any]) -> ast.TypeExpr:
        base = self.generic_type(meta, children[:-1])
        return self._constrained(meta, base, children[-1])

    def _constrained(self, meta: Any, base: ast.TypeExpr, marker: _Marker) -> ast.TypeExpr:
        args: tuple[ast.ConstraintArg, ...] = marker.value
        return self._track(ast.ConstrainedType(self._span(meta), base, args), base,
                           *(a.value for a in args))

    def literal_type(self, meta: Any, children: list[Any]) -> ast.LiteralType:
        return self._track(ast.LiteralType(self._ts(children[0]), self._plain(children[0]).value))

    def optional_type(self, meta: Any, children: list[Any]) -> ast.OptionalType:
        inner = children[0]
        if isinstance(inner, ast.OptionalType):
            self._err(self._span(meta), "type is already optional ('??')")
        return self._track(ast.OptionalType(self._span(meta), inner), inner)

    def union_type(self, meta: Any, children: list[Any]) -> ast.UnionType:
        return self._track(ast.UnionType(self._span(meta), tuple(children)), *children)

    def field(self, meta: Any, children: list[Any]) -> ast.FieldDecl:
        tok, typ = children[0], children[1]
        default = children[2] if len(children) > 2 else None
        return ast.FieldDecl(self._span(meta), str(tok.value), typ, default)

    def field_list(self, meta: Any, children: list[Any]) -> list[ast.FieldDecl]:
        seen: set[str] = set()
        for f in children:
            if f.name in seen:
                self._err(f.span, f"duplicate field '{f.name}'")
            seen.add(f.name)
        return list(children)

    def record_type(self, meta: Any, children: list[Any]) -> ast.RecordType:
        fields = children[0]
        return self._track(ast.RecordType(self._span(meta), tuple(fields)),
                           *[f.type for f in fields])

    # ------------------------------------------------------------ declarations

    def params(self, meta: Any, children: list[Any]) -> list[ast.Param]:
        seen: set[str] = set()
        for p in children:
            if p.name in seen:
                self._err(p.span, f"duplicate parameter '{p.name}'")
            seen.add(p.name)
        return list(children)

    def param(self, meta: Any, children: list[Any]) -> ast.Param:
        tok, typ = children[0], children[1]
        default = children[2] if len(children) > 2 else None
        return ast.Param(self._span(meta), self._name(tok, "parameter"), typ, default)

    def embed_flag(self, meta: Any, children: list[Any]) -> _Marker:
        return _Marker("embed")

    def live_flag(self, meta: Any, children: list[Any]) -> _Marker:
        return _Marker("live")

    def model_decl(self, meta: Any, children: list[Any]) -> ast.ModelDecl:
        tok, model_id = children[0], children[1]
        embed = any(isinstance(c, _Marker) and c.kind == "embed" for c in children)
        params = next((c for c in children[2:] if isinstance(c, ast.RecordExpr)), None)
        return ast.ModelDecl(self._span(meta), self._name(tok, "model"), self._ts(tok), model_id,
                             embed, params)

    def type_record(self, meta: Any, children: list[Any]) -> ast.TypeDecl:
        tok, fields = children
        rec = ast.RecordType(self._span(meta), tuple(fields))
        return ast.TypeDecl(self._span(meta), self._name(tok, "type"), self._ts(tok), rec)

    def type_alias(self, meta: Any, children: list[Any]) -> ast.TypeDecl:
        tok, typ = children
        return ast.TypeDecl(self._span(meta), self._name(tok, "type"), self._ts(tok), typ)

    def import_alias(self, meta: Any, children: list[Any]) -> Token:
        return children[0]

    def import_module(self, meta: Any, children: list[Any]) -> ast.ImportDecl:
        ref: ast.Ref = children[0]
        alias = children[1] if len(children) > 1 else None
        name = str(alias.value) if alias else ref.parts[-1]
        name_span = self._ts(alias) if alias else ref.span
        return ast.ImportDecl(self._span(meta), name, name_span, ref.dotted, None)

    def import_path(self, meta: Any, children: list[Any]) -> ast.ImportDecl:
        path: ast.Str = children[0]
        alias = children[1] if len(children) > 1 else None
        if alias is not None:
            name, name_span = str(alias.value), self._ts(alias)
        else:
            stem = path.value.replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
            name, name_span = stem, path.span
            if not stem.isidentifier():
                self._err(path.span, f"cannot use '{shown_path(stem)}' as a module name; add `as NAME`")
        return ast.ImportDecl(self._span(meta), name, name_span, None, path)

    def clause_word(self, meta: Any, children: list[Any]) -> Token:
        return children[0]

    def clause(self, meta: Any, children: list[Any]) -> Clause:
        tok, value = children
        return Clause(str(tok.value), self._ts(tok), value, self._span(meta))

    # ------------------------------------------------------------ for kinds/<kind>/clauses.py

    def header(self, meta: Any, children: list[Any]) -> dict[str, Any]:
        """The fields every handler declaration has: span, name, params, returns (the
        first three children of its rule: NAME params type)."""
        tok, params, returns = children[0], children[1], children[2]
        return dict(span=self._span(meta), name=self._name(tok, "handler"), name_span=self._ts(tok),
                    params=tuple(params), returns=returns)

    def clauses(self, kind: str, owner: str, clauses: list[Any]) -> dict[str, Any]:
        """The AST fields of the clause body ``kind`` of ``owner`` (problems reported)."""
        return apply_clauses(ClauseSet(kind, owner, clauses), self.diagnostics)

    def span(self, meta: Any) -> Span:
        return self._span(meta)

    def token_span(self, tok: Token) -> Span:
        return self._ts(tok)

    def error(self, span: Span, msg: str) -> None:
        self._err(span, msg)

    def hook_decl(self, meta: Any, children: list[Any]) -> ast.HookDecl:
        tok = children[0]
        fields = self.clauses("hook", str(tok.value), children[1:])
        for required in ("when", "run"):
            if not has_clause(children[1:], required):
                self._err(self._ts(tok), f"hook '{tok.value}' needs a `{required}` clause")
        return ast.HookDecl(self._span(meta), self._name(tok, "hook"), self._ts(tok),
                            trigger=fields.get("when"), condition=fields.get("if"),
                            program=fields.get("run"), action=fields.get("action"),
                            max_fires=fields.get("max_fires"))

    # ------------------------------------------------------------ statements

    def assign(self, meta: Any, children: list[Any]) -> ast.Assign:
        tok, value = children
        return ast.Assign(self._span(meta), self._name(tok, "variable"), self._ts(tok), value)

    def return_stmt(self, meta: Any, children: list[Any]) -> ast.Return:
        return ast.Return(self._span(meta), children[0])

    def mock_for(self, meta: Any, children: list[Any]) -> _Marker:
        return _Marker("for", children[0])

    def mock_model(self, meta: Any, children: list[Any]) -> ast.MockModel:
        ref = children[1]
        handler = children[2].value if isinstance(children[2], _Marker) else None
        return ast.MockModel(self._span(meta), ref, handler, children[-1])

    def mock_handler(self, meta: Any, children: list[Any]) -> ast.MockHandler:
        return ast.MockHandler(self._span(meta), children[0], children[1])

    def expect(self, meta: Any, children: list[Any]) -> ast.Expect:
        return ast.Expect(self._span(meta), children[0])

    def expect_error(self, meta: Any, children: list[Any]) -> ast.ExpectError | ast.Expect:
        expr = children[0]
        span = self._span(meta)
        if (isinstance(expr, ast.Compare) and expr.op == "contains"
                and isinstance(expr.left, ast.Call)):
            return ast.ExpectError(span, expr.left, expr.right)
        self._err(expr.span, "write `expect error CALL contains \"text\"`")
        return ast.Expect(span, expr)

    def test_decl(self, meta: Any, children: list[Any]) -> ast.TestDecl:
        title: ast.Str = children[0]
        live = any(isinstance(c, _Marker) and c.kind == "live" for c in children)
        body = tuple(c for c in children[1:] if not isinstance(c, _Marker))
        return ast.TestDecl(self._span(meta), title.value, title.span, live, body)

    # ------------------------------------------------------------ evals

    def eval_data(self, meta: Any, children: list[Any]) -> ast.EvalData:
        path, row_type = children
        return ast.EvalData(self._span(meta), path, row_type)

    def eval_run(self, meta: Any, children: list[Any]) -> _Marker:
        return _Marker("run", children[0], self._span(meta))

    def eval_metric(self, meta: Any, children: list[Any]) -> ast.EvalMetric:
        tok, value = children
        return ast.EvalMetric(self._span(meta), str(tok.value), self._ts(tok), value)

    def eval_threshold(self, meta: Any, children: list[Any]) -> ast.EvalThreshold:
        tok, op, bound = children
        span = self._span(meta)
        if op not in THRESHOLD_OPS:
            self._err(span, f"a threshold compares with {', '.join(THRESHOLD_OPS[:-1])} or "
                            f"{THRESHOLD_OPS[-1]}, not '{op}'")
        value = bound if isinstance(bound, (ast.Int, ast.Float)) else None
        if value is None:
            self._err(bound.span, f"a threshold's bound is a number literal, as in "
                                  f"`threshold {tok.value} >= 0.8`")
        elif isinstance(value, ast.Int) and abs(value.value) > _MAX_FLOAT:
            self._err(bound.span, "a threshold's bound is too large for a number")
            value = None
        return ast.EvalThreshold(span, str(tok.value), self._ts(tok), op, value)

    def eval_decl(self, meta: Any, children: list[Any]) -> ast.EvalDecl:
        tok, items = children[0], children[1:]
        name = self._name(tok, "eval")
        where = f"eval '{name}'"
        data = [i for i in items if isinstance(i, ast.EvalData)]
        runs = [i for i in items if isinstance(i, _Marker)]
        metrics = [i for i in items if isinstance(i, ast.EvalMetric)]
        thresholds = [i for i in items if isinstance(i, ast.EvalThreshold)]
        for word, found in (("data", [d.span for d in data]), ("run", [r.span for r in runs if r.span is not None])):
            for extra in found[1:]:
                self.diagnostics.append(error(
                    Span.point(self.file, extra.line, extra.col, len(word)),
                    f"duplicate `{word}` clause in {where}",
                    (Span.point(self.file, found[0].line, found[0].col, len(word)),
                     "first given here")))
        if not data:
            self._err(self._ts(tok), f"{where} needs a `data` clause: data \"rows.jsonl\" as "
                                     f"RowType")
        if not runs:
            self._err(self._ts(tok), f"{where} needs a `run` clause: run handler(param=row.field)")
        if not metrics:
            self._err(self._ts(tok), f"{where} needs at least one `metric`: metric NAME = "
                                     f"EXPRESSION")
        seen: dict[str, ast.EvalMetric] = {}
        for m in metrics:
            if m.name in seen:
                self.diagnostics.append(error(m.name_span, f"duplicate metric '{m.name}' in {where}",
                                              (seen[m.name].name_span, "first declared here")))
            else:
                seen[m.name] = m
        bounds: dict[tuple[str, str], ast.EvalThreshold] = {}
        for t in thresholds:
            if (t.metric, t.op) in bounds:
                self.diagnostics.append(error(t.span, f"duplicate threshold `{t.metric} {t.op}` "
                                                      f"in {where}",
                                              (bounds[t.metric, t.op].span, "first given here")))
            else:
                bounds[t.metric, t.op] = t
        # a duplicate is reported above and left out, so later stages see each name once
        return ast.EvalDecl(self._span(meta), name, self._ts(tok), data[0] if data else None,
                            runs[0].value if runs else None, tuple(seen.values()), tuple(thresholds))


#: reserved words: these and the name of every handler kind
KEYWORDS = frozenset("model type import as hook test return for in if else and or not true "
                     "false none mock expect try".split()) | frozenset(registry.KINDS)


THRESHOLD_OPS = (">=", ">", "<=", "<", "==")

_MAX_FLOAT = int(sys.float_info.max)


def _add_kind_rules() -> None:
    """The grammar rules of each handler kind (``kinds/<kind>/clauses.py``) become
    builder methods, called like the ones above."""
    for kind in registry.KINDS:
        for rule, build in registry.syntax(kind).RULES.items():
            setattr(Builder, rule, build)


_add_kind_rules()


def suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
    """`; did you mean 'x'?` for a close match, else ``""``."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
