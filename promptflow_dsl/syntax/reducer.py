"""Parse and build in one pass: the LALR parser calls the :class:`~.builder.Builder` as
it reduces each rule, so no parse tree is made and walked again.

The shared parser's tables (:func:`.parser.get_parser`) are driven with callbacks of
our own instead of Lark's tree-building ones.  They shape a rule's children exactly as
Lark's tree builder does for this grammar — anonymous tokens dropped (all kept in a
``!rule``), the generated ``__rule_star_N`` helper rules spliced into their parent, a
``?rule`` with one child replaced by that child — and give each builder method the
position Lark's ``propagate_positions`` would: from the start of the first child to the
end of the last one, dropped tokens included, a child replaced by its only child
keeping the extent of the rule it stood for (so ``(a + b) * c`` starts at ``(``).
The AST is therefore the one a tree and then a transform give, at a fraction of the
cost.

Errors: Lark's ``UnexpectedInput`` for a syntax error, :class:`~.builder.DepthExceeded`
for nesting past the limit (raised as soon as it is reached); :func:`.parse_module`
turns both into diagnostics.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .builder import Builder


class Built:
    """A reduced rule on the parser's stack: the builder's value and the extent of the
    text the rule covered (``line`` is ``None`` when it covered none); it is also the
    ``meta`` the builder methods read positions from."""

    __slots__ = ("value", "line", "column", "end_line", "end_column", "empty")

    def __init__(self, line: int | None, column: int | None, end_line: int | None,
                 end_column: int | None) -> None:
        self.value: Any = None
        self.line = line
        self.column = column
        self.end_line = end_line
        self.end_column = end_column
        self.empty = line is None


class _Rule:
    """How one grammar rule's children are shaped and built (see the module doc)."""

    __slots__ = ("keep", "splice", "expand1", "inline", "method", "passthrough")

    def __init__(self, rule: Any) -> None:
        keep_all = rule.options.keep_all_tokens
        self.keep: tuple[int, ...] = tuple(
            i for i, sym in enumerate(rule.expansion)
            if keep_all or not (sym.is_term and sym.filter_out))
        self.splice = frozenset(i for i in self.keep if not rule.expansion[i].is_term
                                and rule.expansion[i].name.startswith("_"))
        self.expand1 = bool(rule.options.expand1 and not rule.alias)
        self.inline = rule.origin.name.startswith("_")
        name = rule.alias or rule.origin.name
        self.method: str | None = None if self.inline else str(name)
        #: ``?a: b``: the child stands for the rule, with the same extent
        self.passthrough = self.expand1 and self.keep == (0,) and len(rule.expansion) == 1 \
            and not self.splice


def _first(children: list[Any]) -> Any:
    return children[0]


def _reduce(plan: _Rule, builder: Builder, children: list[Any]) -> Any:
    first = last = None
    for c in children:
        if c.line is not None:  # a token, or a rule that covered some text
            first = c
            break
    if first is None:
        out = Built(None, None, None, None)
    else:
        for c in reversed(children):
            if c.line is not None:
                last = c
                break
        assert last is not None
        out = Built(first.line, first.column, last.end_line, last.end_column)
    values: list[Any] = []
    splice = plan.splice
    for i in plan.keep:
        c = children[i]
        if i in splice:
            values.extend(c.value)
        elif type(c) is Built:
            values.append(c.value)
        else:
            values.append(c)
    if plan.inline:
        out.value = values
    elif plan.expand1 and len(values) == 1:
        out.value = values[0]
    else:
        assert plan.method is not None
        out.value = getattr(builder, plan.method)(out, values)
    return out


_PLANS: dict[int, dict[Any, _Rule]] = {}


def _plans(lark: Any) -> dict[Any, _Rule]:
    found = _PLANS.get(id(lark))
    if found is None:
        found = _PLANS[id(lark)] = {rule: _Rule(rule) for rule in lark.rules}
    return found


def parse_and_build(lark: Any, text: str, builder: Builder) -> Any:
    """The module ``text`` builds to, parsed with ``lark``'s tables (a Lark LALR parser,
    tree-building or not: only its tables and lexer are used).

    Raises Lark's ``UnexpectedInput`` on a syntax error and ``DepthExceeded`` when the
    builder finds nesting past its limit.
    """
    from lark.parsers.lalr_parser_state import ParseConf, ParserState

    callbacks = {rule: _first if plan.passthrough else partial(_reduce, plan, builder)
                 for rule, plan in _plans(lark).items()}
    frontend = lark.parser
    inner = frontend.parser.parser
    state = ParserState(ParseConf(inner.parse_table, callbacks, "start"),
                        frontend._make_lexer_thread(text))
    result = inner.parse_from_state(state)
    return result.value if type(result) is Built else result
