"""The output of the check stage: a :class:`CheckedProgram` and what it holds.

Nothing here is mutated after the checker returns it.  Handlers are identified
by a key ``"<module key>::<name>"``; the program shows them to users under the
name the entry module uses (``classify``, ``text.split_words``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..diagnostics import Diagnostic, Span
from ..lang.types import RecordType, Type
from ..syntax import ast


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: Type
    default: ast.Expr | None = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Signature:
    params: tuple[ParamInfo, ...]
    returns: Type

    def show(self, name: str) -> str:
        ps = ", ".join(f"{p.name}: {p.type.show()}" + (" = ..." if p.default is not None else "")
                       for p in self.params)
        return f"{name}({ps}) -> {self.returns.show()}"

    def param(self, name: str) -> ParamInfo | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class Resolved:
    """What a call site (or handler reference) resolved to."""

    kind: str  # "handler" | "builtin" | "counter" | "eval"
    target: str  # handler key, the builtin's name, or (for `evaluate(e)`) the eval's key


@dataclass(frozen=True)
class ModelInfo:
    name: str
    model_id: str
    embed: bool
    params: dict[str, Any]
    span: Span | None  # None for the implicit `default`


@dataclass(frozen=True, kw_only=True)
class Details:
    """What the checker found out about one handler that later stages need (resolved
    files, bindings, limits...).  Each kind subclasses it, frozen and typed, in
    ``kinds/<kind>/details.py``; nothing reads it by string keys."""

    cache: bool = True  # whether the response cache may answer its model calls
    #: calls through this kind may come back to it (bounded at run time, as a
    #: decomposer's ``max_depth`` does): a call cycle through it is no error
    may_recurse: ClassVar[bool] = False

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Handlers it may call besides its own call sites, with the kind of edge:
        ``(key, "may_call")`` (a decomposer's or route's dispatch), ``(key, "hook")``
        (a hook's trigger or program while a prompt generates)."""
        return ()


@dataclass(frozen=True)
class HandlerInfo:
    key: str
    name: str  # name inside its own module
    kind: str  # prompt | tool | flow | decompose | route | sketch
    module_key: str
    signature: Signature
    decl: ast.HandlerDecl
    # Keys of handlers this one calls or may call, with the kind of edge:
    # "call" (a flow's call site), "may_call" (decompose / route dispatch),
    # "hook" (a hook program or trigger used while this prompt generates).
    calls: tuple[tuple[str, str], ...] = ()
    # The kind's own facts (``kinds/<kind>/details.py``).
    details: Details = field(default_factory=Details, compare=False, hash=False)


@dataclass(frozen=True)
class HookInfo:
    key: str
    name: str
    module_key: str
    decl: ast.HookDecl
    groups: tuple[str, ...]  # named groups of a regex trigger
    calls: tuple[str, ...] = ()  # handler keys its trigger, condition and program call
    action: str = "insert"  # insert | replace_segment | stop (insert when not written)
    max_fires: int = 5


@dataclass(frozen=True)
class TestInfo:
    name: str
    module_key: str
    decl: ast.TestDecl

    __test__ = False


@dataclass(frozen=True)
class MetricInfo:
    """One ``metric NAME = EXPR`` of an eval: ``expr`` is evaluated per row with ``row``
    and ``out`` in scope; ``type`` is ``bool``, ``int``, ``float``, an optional of those
    (``none`` = not scored) or ``any`` (checked per row when it runs)."""

    name: str
    expr: ast.Expr
    type: Type
    span: Span  # the metric's name


@dataclass(frozen=True)
class ThresholdInfo:
    """``threshold METRIC OP VALUE``: ``op`` is ``>=``, ``>``, ``<=``, ``<`` or ``==``."""

    metric: str
    op: str
    value: float
    span: Span

    @property
    def text(self) -> str:
        """``label_ok >= 0.8`` (the form the dataset engine parses)."""
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class EvalInfo:
    """A checked ``eval`` declaration: everything a run needs, without re-checking.

    ``data`` is the dataset's absolute path (``data_format`` ``"jsonl"`` or ``"csv"``),
    whose ``rows`` rows all fitted ``row_type`` when the program was checked (CSV cells
    are converted as ``lang/row_types.py`` says).  ``run`` is evaluated once per row with
    ``row`` in scope; its value, of type ``out_type``, is ``out`` for the metrics.
    ``calls`` holds the keys of the handlers ``run`` and the metrics call.
    """

    key: str  # "<module key>::<name>"
    name: str
    module_key: str
    decl: ast.EvalDecl
    data: Path
    data_format: str  # jsonl | csv
    row_type: RecordType
    run: ast.Expr
    out_type: Type
    metrics: tuple[MetricInfo, ...]
    thresholds: tuple[ThresholdInfo, ...] = ()
    rows: int = 0
    calls: tuple[str, ...] = ()

    def metric(self, name: str) -> MetricInfo | None:
        return next((m for m in self.metrics if m.name == name), None)


@dataclass
class CheckedModule:
    key: str
    uri: str
    path: Path | None
    module: ast.Module
    std_name: str | None
    imports: dict[str, str]  # alias -> module key
    types: dict[str, Type] = field(default_factory=dict)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    handlers: dict[str, HandlerInfo] = field(default_factory=dict)
    hooks: dict[str, HookInfo] = field(default_factory=dict)
    tests: list[TestInfo] = field(default_factory=list)
    evals: dict[str, EvalInfo] = field(default_factory=dict)
    # data file uri -> {line: text} of the lines diagnostics point at (for rendering them)
    data_lines: dict[str, dict[int, str]] = field(default_factory=dict)
    # call-site span -> what it resolved to; expression span -> its static type
    resolutions: dict[Span, Resolved] = field(default_factory=dict)
    expr_types: dict[Span, Type] = field(default_factory=dict)


@dataclass
class CheckedProgram:
    """A program that passed the checker: every module, handler, hook and test resolved.

    Use :meth:`handler` to look a handler up by the name the entry module uses.  Planning
    and running are later stages: the library facade's :class:`promptflow_dsl.Program`
    adds ``plan``, ``run`` and ``arun``.
    """

    entry: CheckedModule
    modules: dict[str, CheckedModule]
    diagnostics: list[Diagnostic]  # warnings only: a program with errors raises instead
    sources: dict[str, str]
    root: Path | None = None
    allowed: tuple[Path, ...] = ()  # --allow-path folders: files may also come from there

    # ------------------------------------------------------------ look-ups

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    @property
    def handlers(self) -> dict[str, HandlerInfo]:
        """The entry module's own handlers, by name."""
        return dict(self.entry.handlers)

    @property
    def tests(self) -> list[TestInfo]:
        return list(self.entry.tests)

    def all_handlers(self) -> dict[str, HandlerInfo]:
        """Every handler of every module, by key."""
        return {h.key: h for m in self.modules.values() for h in m.handlers.values()}

    def all_hooks(self) -> dict[str, HookInfo]:
        return {h.key: h for m in self.modules.values() for h in m.hooks.values()}

    @property
    def evals(self) -> dict[str, EvalInfo]:
        """The entry module's own evals, by name."""
        return dict(self.entry.evals)

    def all_evals(self) -> dict[str, EvalInfo]:
        """Every eval of every module, by key (what an ``evaluate(...)`` call resolved to:
        ``Resolved("eval", key)``)."""
        return {e.key: e for m in self.modules.values() for e in m.evals.values()}

    def eval(self, name: str) -> EvalInfo:
        """The eval the entry module calls ``name``.

        Raises ``KeyError`` with the known names when there is none.
        """
        if name in self.entry.evals:
            return self.entry.evals[name]
        known = ", ".join(sorted(self.entry.evals)) or "none"
        raise KeyError(f"no eval '{name}' (evals: {known})")

    def handler(self, name: str) -> HandlerInfo:
        """The handler the entry module calls ``name`` (``classify`` or ``alias.name``).

        Raises ``KeyError`` with the known names when there is none.
        """
        if name in self.entry.handlers:
            return self.entry.handlers[name]
        if "." in name:
            alias, _, rest = name.partition(".")
            mkey = self.entry.imports.get(alias)
            if mkey is not None and rest in self.modules[mkey].handlers:
                return self.modules[mkey].handlers[rest]
        known = ", ".join(sorted(self.entry.handlers)) or "none"
        raise KeyError(f"no handler '{name}' (handlers: {known})")

    def display_name(self, key: str) -> str:
        """How the entry module would spell the handler or hook with this key."""
        mkey, _, name = key.rpartition("::")
        if mkey == self.entry.key:
            return name
        for alias, k in self.entry.imports.items():
            if k == mkey:
                return f"{alias}.{name}"
        mod = self.modules.get(mkey)
        if mod is not None and mod.std_name:
            prefix = mod.std_name
        else:  # a module the entry does not import itself: named by its file's stem
            prefix = Path(mod.uri if mod else mkey).stem
        return f"{prefix}.{name}"

    def module_of(self, key: str) -> CheckedModule:
        return self.modules[key.rpartition("::")[0]]
