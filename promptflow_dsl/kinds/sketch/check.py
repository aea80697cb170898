"""The rules of ``sketch`` (check stage): the decoder, the template and its holes
against the return type, and a warning for each constraint the model cannot
enforce (``check/capabilities.py``)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ...check.capabilities import check_sketch_capabilities
from ...check.decls import DEFAULT_RETRIES, check_model_ref, check_positive, check_settings
from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker
from ...check.program import Signature
from ...check.templates import check_template
from ...diagnostics import Span
from ...lang.decoding import decoder_plan
from ...lang.holes import Literal, masked_source, parse_template, repeated_holes
from ...lang.templates import locate, template_env
from ...lang.types import (
    BOOL,
    FLOAT,
    INT,
    STR,
    AnyType,
    ListType,
    LiteralType,
    RecordType,
    Type,
    is_assignable,
)
from ...syntax import ast
from .ast import SketchDecl
from .details import SketchDetails


def check(env: ModuleEnv, d: SketchDecl, sig: Signature, exprs: ExprChecker) -> SketchDetails:
    model, params = check_model_ref(env, d.model), check_settings(env, d.settings)
    decoder, search, label, beam = decoder_of(env, d.decoder)
    if d.retries is not None:
        check_positive(env, d.retries, "retries", 0)
    retries = d.retries.value if d.retries is not None else DEFAULT_RETRIES

    def details(holes: tuple[str, ...] = ()) -> SketchDetails:
        return SketchDetails(model=model, params=params, decoder=decoder, beam=beam,
                             retries=retries, holes=holes, search=search, label=label)

    if d.template is None:
        return details()
    node = d.template
    tpl = parse_template(node.value)
    for he in tpl.errors:
        line, col = locate(node, node.value, he.start)
        env.err(Span.point(env.file, line, col, max(he.end - he.start, 1)), he.message)
    holes = tpl.holes
    param_names = {p.name for p in sig.params}
    used: set[str] = set()
    if any(isinstance(seg, Literal) and "{" in seg.text for seg in tpl.segments):
        # the whole template at once, holes blanked out: a {% for %} or {% if %} may
        # span holes, and a later literal may read an earlier hole ({{ answer }})
        source = masked_source(node.value, tpl)
        names, diags = check_template(node, param_names | {h.name for h in holes},
                                      f"template of '{d.name}'", piece=source, piece_offset=0)
        env.diags.extend(diags)
        used |= names
        check_hole_refs(env, d.name, node, source, holes, param_names, names)
    if not holes and not tpl.errors:
        env.err(node.span, f"sketch '{d.name}' has no holes: write [name] where the model fills in")
    for p in sig.params:
        if p.name not in used:
            env.warn(next(x.span for x in d.params if x.name == p.name),
                     f"parameter '{p.name}' of sketch '{d.name}' is not used in the template")
    ret = sig.returns
    hole_types: dict[str, Type] = {}
    repeated = repeated_holes(tpl)
    for h in holes:
        if h.choices:
            hole_types[h.name] = LiteralType(tuple(h.choices))
        else:
            hole_types[h.name] = {"str": STR, "int": INT, "float": FLOAT, "bool": BOOL}.get(h.type, STR)
        if h.name in repeated:  # filled once per loop iteration: a list
            hole_types[h.name] = ListType(hole_types[h.name])

    def hole_span(h: Any) -> Span:
        line, col = locate(node, node.value, h.name_start)
        return Span.point(env.file, line, col, len(h.name))

    if isinstance(ret, RecordType):
        fields = {f.name: f for f in ret.fields}
        for h in holes:
            f = fields.get(h.name)
            if f is None:
                env.err(hole_span(h), f"hole '{h.name}' is not a field of the return type {ret.show()}")
            elif not is_assignable(hole_types[h.name], f.type):
                env.err(hole_span(h), f"hole '{h.name}' gives {hole_types[h.name].show()}, but field "
                                      f"'{h.name}' is {f.type.show()}")
            else:
                check_lengths(env, h, f.type, hole_span)
        hole_names = {h.name for h in holes}
        for f in ret.fields:
            if f.required and f.name not in hole_names and not tpl.errors:
                where = d.returns.span
                if isinstance(d.returns, ast.RecordType):
                    where = next((x.span for x in d.returns.fields if x.name == f.name), where)
                env.err(where, f"field '{f.name}' of the return type has no hole in the template")
    elif isinstance(ret, (AnyType,)):
        pass
    elif len(holes) == 1 and is_assignable(hole_types[holes[0].name], ret):
        check_lengths(env, holes[0], ret, hole_span)
    elif holes:
        env.err(d.returns.span, f"sketch '{d.name}' returns {ret.show()}: use a record type with "
                                f"one field per hole ({', '.join(h.name for h in holes)})")
    # What the model cannot enforce, and the runtime's fallback (a warning each).
    if search and d.decoder is not None:
        # the decoder warning names the declared decoder (var(N), beam_var(N)); the
        # hole warnings are the shared ones
        check_sketch_capabilities(env, replace(d, decoder=None), holes, decoder, beam, retries,
                                  hole_span)
        warning = search_fallback_warning(env, d, label)
        if warning is not None:
            env.warn(d.decoder.span, warning)
    else:
        check_sketch_capabilities(env, d, holes, decoder, beam, retries, hole_span)
    return details(tuple(h.name for h in holes))


#: decoder name -> (search, default width or None when a width is required)
DECODERS: dict[str, tuple[str, int | None]] = {
    "sequential": ("", 1), "interleaved": ("", 1), "var": ("var", 2),
    "beam_var": ("beam_var", None), "beam": ("beam_var", None)}
_EXPECTED = "expected sequential, interleaved, var, var(N), beam_var(N) or beam(N)"


def decoder_of(env: ModuleEnv, node: ast.Expr | None) -> tuple[str, str, str, int]:
    """(decoder, search, label, width) of a ``decoder`` clause; reports a bad one.

    ``decoder`` is ``sequential``, ``interleaved`` or ``beam`` (for the variable-level
    searches ``var(N)``, ``beam_var(N)`` and ``beam(N)``, another name of
    ``beam_var(N)``); ``search`` is then ``var`` or ``beam_var``, else ``""``."""
    if node is None:
        return "sequential", "", "sequential", 1
    func = node.func if isinstance(node, ast.Call) else node
    name = func.name if isinstance(func, ast.Name) else ""
    known = DECODERS.get(name)
    if known is None:
        shown = name if isinstance(node, ast.Name) else f"{name}(...)"
        env.err(node.span, f"unknown decoder '{shown}' ({_EXPECTED})")
        return "sequential", "", "sequential", 1
    search, default = known
    if isinstance(node, ast.Name):
        if default is None:
            env.err(node.span, f"{name} needs a width: {name}(N)")
            return "sequential", "", "sequential", 1
        if not search:
            return name, "", name, 1
        return "beam", search, f"{name}({default})", default
    if not search:
        env.err(node.span, f"decoder '{name}' takes no width ({_EXPECTED})")
        return "sequential", "", "sequential", 1
    assert isinstance(node, ast.Call)
    width = node.args[0]
    if isinstance(width, ast.Int) and width.value < 1:
        env.err(width.span, "beam width must be at least 1")
    n = width.value if isinstance(width, ast.Int) and width.value >= 1 else 1
    return "beam", search, f"{name}({n})", n


def check_lengths(env: ModuleEnv, h: Any, t: Type, hole_span: Any) -> None:
    """A hole's ``min_chars`` / ``max_chars`` against its field's ``str(min_length=,
    max_length=)``: an error when no value can meet both."""
    if isinstance(t, ListType):
        t = t.item
    c = getattr(t, "constraints", None)
    if c is None:
        return
    if h.min_chars is not None and c.max_length is not None and h.min_chars > c.max_length:
        env.err(hole_span(h), f"hole '{h.name}' has min_chars={h.min_chars}, but its field allows "
                              f"at most {c.max_length} characters (max_length={c.max_length})")
    if h.max_chars is not None and c.min_length is not None and h.max_chars < c.min_length:
        env.err(hole_span(h), f"hole '{h.name}' has max_chars={h.max_chars}, but its field needs "
                              f"at least {c.min_length} characters (min_length={c.min_length})")


def search_fallback_warning(env: ModuleEnv, d: SketchDecl, label: str) -> str | None:
    """The checker's warning when ``var(N)`` / ``beam_var(N)`` will decode sequentially
    (the sketch's model gives no log-probabilities), or None."""
    from ...check.capabilities import cached_server_capabilities, static_capabilities

    ref = d.model
    if ref is None:
        info = env.cm.models.get("default")
    elif len(ref.parts) == 1:
        info = env.cm.models.get(ref.parts[0])
    else:
        key = env.lm.imports.get(ref.parts[0])
        mod = env.checked.get(key) if key is not None else None
        info = mod.models.get(ref.parts[1]) if mod is not None else None
    if info is None or info.embed:
        return None
    caps = static_capabilities(info.model_id, info.params,
                               cached_server_capabilities(env.project.root, info.params.get("api_base")))
    used, why = decoder_plan(caps, "beam", 1, label=label)
    if why is None:
        return None
    return (f"{label} needs token log-probabilities, which model '{info.model_id}' does not give: "
            f"the runtime falls back to {used} decoding")


def check_hole_refs(env: ModuleEnv, sketch: str, node: ast.Str, source: str, holes: Any,
                    params: set[str], names: frozenset[str]) -> None:
    """Rules for a literal that reads a hole (``{{ answer }}`` after ``[answer]``): the
    hole comes first, it is inserted as it is (``{{ name }}``: no filter, attribute,
    test or expression over it) and no parameter has its name.  An error each, located."""
    from jinja2 import nodes

    by_name = {h.name: h for h in holes}
    refs = names & set(by_name)
    if not refs:
        return
    try:
        tree = template_env().parse(source)
    except Exception:  # noqa: BLE001 - check_template reported the syntax error
        return
    bare = {id(child) for out in tree.find_all(nodes.Output) for child in out.nodes
            if isinstance(child, nodes.Name)}
    count: dict[tuple[str, int], int] = {}
    for n in tree.find_all(nodes.Name):
        if n.name not in refs or n.ctx != "load":
            continue
        nth = count.get((n.name, n.lineno), 0)
        count[(n.name, n.lineno)] = nth + 1
        offset = _name_offset(source, n.name, n.lineno, nth)
        line, col = locate(node, node.value, offset)
        span = Span.point(env.file, line, col, len(n.name))
        hole = by_name[n.name]
        if n.name in params:
            env.err(span, f"'{n.name}' is both a parameter and a hole of sketch '{sketch}': rename "
                          f"the hole so that {{{{ {n.name} }}}} is not ambiguous")
        elif offset < hole.start:
            env.err(span, f"hole '{n.name}' is read before it is filled: a literal can only "
                          f"insert a hole that comes earlier in the template")
        elif id(n) not in bare:
            env.err(span, f"hole '{n.name}' can only be inserted as it is, {{{{ {n.name} }}}}: "
                          f"no filter, attribute, test or expression over a hole's value")


_REGION = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


def _name_offset(source: str, name: str, lineno: int, nth: int) -> int:
    """The offset of ``name`` inside a Jinja region on line ``lineno`` (1-based) of
    ``source``: its ``nth`` such occurrence on that line."""
    start = 0
    for _ in range(lineno - 1):
        start = source.find("\n", start) + 1
    end = source.find("\n", start)
    end = len(source) if end < 0 else end
    word = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
    hits = [r.start() + m.start() for r in _REGION.finditer(source, start, end)
            for m in word.finditer(r.group())]
    return hits[min(nth, len(hits) - 1)] if hits else start
