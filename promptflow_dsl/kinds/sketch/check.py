"""The rules of ``sketch`` (check stage): the decoder, the template and its holes
against the return type, and a warning for each constraint the model cannot
enforce (``check/capabilities.py``)."""

from __future__ import annotations

from typing import Any

from ...check.capabilities import check_sketch_capabilities
from ...check.decls import DEFAULT_RETRIES, check_model_ref, check_positive, check_settings
from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker
from ...check.program import Signature
from ...check.templates import check_template
from ...diagnostics import Span
from ...lang.holes import Literal, parse_template
from ...lang.templates import locate
from ...lang.types import (
    BOOL,
    FLOAT,
    INT,
    STR,
    AnyType,
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
    decoder = "sequential"
    beam = 1
    if isinstance(d.decoder, ast.Name):
        decoder = d.decoder.name
        if decoder == "beam":
            env.err(d.decoder.span, "beam needs a width: beam(N)")
        elif decoder not in ("sequential", "interleaved"):
            env.err(d.decoder.span, f"unknown decoder '{decoder}' (expected sequential, "
                                    f"interleaved or beam(N))")
    elif isinstance(d.decoder, ast.Call):
        assert isinstance(d.decoder.func, ast.Name)
        decoder = d.decoder.func.name
        width = d.decoder.args[0]
        if decoder != "beam":
            env.err(d.decoder.span, f"unknown decoder '{decoder}(...)' (expected beam(N))")
        elif isinstance(width, ast.Int) and width.value < 1:
            env.err(width.span, "beam width must be at least 1")
        beam = width.value if isinstance(width, ast.Int) else 1
    if d.retries is not None:
        check_positive(env, d.retries, "retries", 0)
    retries = d.retries.value if d.retries is not None else DEFAULT_RETRIES

    def details(holes: tuple[str, ...] = ()) -> SketchDetails:
        return SketchDetails(model=model, params=params, decoder=decoder, beam=beam,
                             retries=retries, holes=holes)

    if d.template is None:
        return details()
    node = d.template
    tpl = parse_template(node.value)
    for he in tpl.errors:
        line, col = locate(node, node.value, he.start)
        env.err(Span.point(env.file, line, col, max(he.end - he.start, 1)), he.message)
    allowed = {p.name for p in sig.params}
    used: set[str] = set()
    for seg in tpl.segments:
        if isinstance(seg, Literal) and ("{" in seg.text):
            names, diags = check_template(node, allowed, f"template of '{d.name}'",
                                          piece=node.value[seg.start:seg.end], piece_offset=seg.start)
            env.diags.extend(diags)
            used |= names
    holes = tpl.holes
    if not holes and not tpl.errors:
        env.err(node.span, f"sketch '{d.name}' has no holes: write [name] where the model fills in")
    for p in sig.params:
        if p.name not in used:
            env.warn(next(x.span for x in d.params if x.name == p.name),
                     f"parameter '{p.name}' of sketch '{d.name}' is not used in the template")
    ret = sig.returns
    hole_types: dict[str, Type] = {}
    for h in holes:
        if h.choices:
            hole_types[h.name] = LiteralType(tuple(h.choices))
        else:
            hole_types[h.name] = {"str": STR, "int": INT, "float": FLOAT, "bool": BOOL}.get(h.type, STR)

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
        pass
    elif holes:
        env.err(d.returns.span, f"sketch '{d.name}' returns {ret.show()}: use a record type with "
                                f"one field per hole ({', '.join(h.name for h in holes)})")
    # What the model cannot enforce, and the runtime's fallback (a warning each).
    check_sketch_capabilities(env, d, holes, decoder, beam, retries, hole_span)
    return details(tuple(h.name for h in holes))
