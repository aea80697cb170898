"""The typed AST of a ``.pflow`` module: frozen dataclasses, each with a source span.

The builder (:mod:`promptflow_dsl.syntax.builder`) produces these from the parse
tree; later stages read them and never modify them.  Nothing here knows about
Lark.  Clause-style bodies (``prompt { ... }``, ``hook { ... }``) are validated by
the builder and stored as named, typed fields.  The declaration of each handler kind
(``PromptDecl``, ``RouteDecl``...) is a :class:`HandlerDecl` defined in its kind's
package, ``promptflow_dsl/kinds/<kind>/ast.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import Span

# --------------------------------------------------------------------------- base


@dataclass(frozen=True)
class Node:
    span: Span


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class TypeExpr(Node):
    pass


@dataclass(frozen=True)
class NamedType(TypeExpr):
    """``str``, ``int``, ``float``, ``bool``, ``any``, ``none`` or a declared type (``T``, ``alias.T``)."""

    name: str


@dataclass(frozen=True)
class ListType(TypeExpr):
    item: TypeExpr


@dataclass(frozen=True)
class DictType(TypeExpr):
    key: TypeExpr
    value: TypeExpr


@dataclass(frozen=True)
class OptionalType(TypeExpr):
    inner: TypeExpr


@dataclass(frozen=True)
class LiteralType(TypeExpr):
    value: str


@dataclass(frozen=True)
class UnionType(TypeExpr):
    options: tuple[TypeExpr, ...]


@dataclass(frozen=True)
class ConstraintArg(Node):
    """``NAME=VALUE`` inside a constrained type; ``value`` is checked by the checker."""

    name: str
    value: Expr


@dataclass(frozen=True)
class ConstrainedType(TypeExpr):
    """``str(max_length=200)``, ``int(min=1)``, ``list[T](min_items=1)``: ``base`` is a
    :class:`NamedType` or a :class:`ListType` (others are refused by the checker)."""

    base: TypeExpr
    args: tuple[ConstraintArg, ...]


@dataclass(frozen=True)
class FieldDecl(Node):
    name: str
    type: TypeExpr
    default: Expr | None = None


@dataclass(frozen=True)
class RecordType(TypeExpr):
    fields: tuple[FieldDecl, ...]


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expr(Node):
    pass


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class Str(Expr):
    """A string literal.

    ``style`` is ``"plain"`` (``"..."``, escapes processed), ``"raw"`` (``r"..."``)
    or ``"text"`` (``\"\"\"...\"\"\"``, raw and dedented).  ``origins`` gives, for each
    line of ``value``, the source (line, column) where that line's first character
    came from, so positions inside templates map back to the ``.pflow`` file.
    """

    value: str
    style: str = "plain"
    origins: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)

    def origin(self, line_index: int, col_index: int = 0) -> tuple[int, int]:
        """Source (line, col) of character ``col_index`` of line ``line_index`` (0-based)."""
        if not self.origins:
            return (self.span.line, self.span.col)
        i = min(max(line_index, 0), len(self.origins) - 1)
        line, col = self.origins[i]
        return (line, col + col_index)


@dataclass(frozen=True)
class Int(Expr):
    value: int


@dataclass(frozen=True)
class Float(Expr):
    value: float


@dataclass(frozen=True)
class Bool(Expr):
    value: bool


@dataclass(frozen=True)
class NoneLit(Expr):
    pass


@dataclass(frozen=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class RecordEntry(Node):
    key: str
    value: Expr


@dataclass(frozen=True)
class RecordExpr(Expr):
    entries: tuple[RecordEntry, ...]


@dataclass(frozen=True)
class Attr(Expr):
    obj: Expr
    name: str
    name_span: Span


@dataclass(frozen=True)
class Index(Expr):
    obj: Expr
    index: Expr


@dataclass(frozen=True)
class Keyword(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    malformed: bool = False  # arguments were dropped after a syntax problem (already reported)


@dataclass(frozen=True)
class Comprehension(Expr):
    """``[elt for var in iter if cond]``: one task per item at run time."""

    elt: Expr
    var: str
    var_span: Span
    iter: Expr
    cond: Expr | None


@dataclass(frozen=True)
class Conditional(Expr):
    """``then if cond else orelse``: only the taken branch runs."""

    then: Expr
    cond: Expr
    orelse: Expr


@dataclass(frozen=True)
class Try(Expr):
    """``try expr else fallback``: ``fallback`` is evaluated only when ``expr`` fails with a
    run error."""

    expr: Expr
    fallback: Expr


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # + - * / %
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnaryOp(Expr):
    op: str  # - not
    operand: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # == != < > <= >= in "not in" contains
    left: Expr
    right: Expr


@dataclass(frozen=True)
class BoolOp(Expr):
    op: str  # and or
    left: Expr
    right: Expr


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Ref(Node):
    """A reference to a declaration by name: ``name`` or ``alias.name``."""

    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Decl(Node):
    name: str
    name_span: Span


@dataclass(frozen=True)
class ModelDecl(Decl):
    model_id: Str
    embed: bool
    params: RecordExpr | None


@dataclass(frozen=True)
class TypeDecl(Decl):
    type: TypeExpr


@dataclass(frozen=True)
class ImportDecl(Decl):
    """``import std.text [as t]`` (``module``) or ``import "lib/x.pflow" as x`` (``path``).

    ``name`` is the alias the module's names are used under.
    """

    module: str | None
    path: Str | None


@dataclass(frozen=True)
class Param(Node):
    name: str
    type: TypeExpr
    default: Expr | None


@dataclass(frozen=True)
class HandlerDecl(Decl):
    """A handler declaration; each kind subclasses it in ``kinds/<kind>/ast.py`` and sets
    ``kind`` to its name."""

    params: tuple[Param, ...]
    returns: TypeExpr

    kind = "handler"


@dataclass(frozen=True)
class Assign(Node):
    name: str
    name_span: Span
    value: Expr


@dataclass(frozen=True)
class Return(Node):
    value: Expr


@dataclass(frozen=True)
class HookDecl(Decl):
    trigger: Expr | None  # Str (raw regex) or Call (a handler returning bool)
    condition: Expr | None
    program: Expr | None  # a Call
    action: Name | None
    max_fires: Int | None = None

    kind = "hook"


# --------------------------------------------------------------------------- evals


@dataclass(frozen=True)
class EvalData(Node):
    """``data "PATH" as TYPE``: the dataset file (relative to the declaring file) and the
    type of its rows."""

    path: Str
    row_type: TypeExpr


@dataclass(frozen=True)
class EvalMetric(Node):
    """``metric NAME = EXPR``: scored per row with ``row`` and ``out`` in scope."""

    name: str
    name_span: Span
    value: Expr


@dataclass(frozen=True)
class EvalThreshold(Node):
    """``threshold METRIC OP NUMBER``; ``op`` is ``>=``, ``>``, ``<=``, ``<`` or ``==``.
    ``value`` is ``None`` when the written bound is not a number literal (reported)."""

    metric: str
    metric_span: Span
    op: str
    value: Int | Float | None


@dataclass(frozen=True)
class EvalDecl(Decl):
    """``eval NAME { data ... run ... metric ... threshold ... }``.  ``data`` and ``run``
    are ``None`` only when the clause is missing (reported by the builder)."""

    data: EvalData | None
    run: Expr | None
    metrics: tuple[EvalMetric, ...]
    thresholds: tuple[EvalThreshold, ...] = ()

    kind = "eval"


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class MockModel(Node):
    model: Ref
    handler: Ref | None
    replies: Expr


@dataclass(frozen=True)
class MockHandler(Node):
    target: Ref
    value: Expr


@dataclass(frozen=True)
class Expect(Node):
    expr: Expr


@dataclass(frozen=True)
class ExpectError(Node):
    call: Call
    text: Expr


TestStmt = Assign | MockModel | MockHandler | Expect | ExpectError


@dataclass(frozen=True)
class TestDecl(Decl):
    """``test "name" [live] { ... }``: ``name`` is the test's title."""

    live: bool
    body: tuple[TestStmt, ...]

    kind = "test"
    __test__ = False  # not a pytest class


# --------------------------------------------------------------------------- module


@dataclass(frozen=True)
class Module(Node):
    file: str
    decls: tuple[Decl, ...]

