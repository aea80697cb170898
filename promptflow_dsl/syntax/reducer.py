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

    __slots__ = ("keep", "splice", "expand1", "inline", "method", "passthrough", "size",
                 "origin")

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
        self.size = len(rule.expansion)
        self.origin = rule.origin.name
        #: ``?a: b``: the child stands for the rule, with the same extent
        self.passthrough = self.expand1 and self.keep == (0,) and len(rule.expansion) == 1 \
            and not self.splice


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
            if values:
                values.extend(c.value)
            else:  # `__x_star: __x_star item`: grow the list in place (no copy per item)
                values = c.value
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


class _Position:
    """What the contextual lexer reads of the parser: the state it is in."""

    __slots__ = ("stack",)

    def __init__(self, stack: list[Any]) -> None:
        self.stack = stack

    @property
    def position(self) -> Any:
        return self.stack[-1]


def parse_and_build(lark: Any, text: str, builder: Builder) -> Any:
    """The module ``text`` builds to, parsed with ``lark``'s tables and lexer (a Lark
    LALR parser with the contextual lexer; its own tree building is not used).

    Raises Lark's ``UnexpectedInput`` on a syntax error and ``DepthExceeded`` when the
    builder finds nesting past its limit.
    """
    from lark import Token
    from lark.exceptions import UnexpectedToken
    from lark.parsers.lalr_analysis import Shift

    plans = _plans(lark)
    inner = lark.parser.parser.parser
    table = inner.parse_table
    states = table.states
    end_state = table.end_states["start"]
    state_stack: list[Any] = [table.start_states["start"]]
    value_stack: list[Any] = []
    thread = lark.parser._make_lexer_thread(text)
    token = None

    def feed(token: Any, is_end: bool) -> Any:
        kind = token.type
        while True:
            try:
                action, arg = states[state_stack[-1]][kind]
            except KeyError:
                raise UnexpectedToken(token, set()) from None
            if action is Shift:
                state_stack.append(arg)
                value_stack.append(token)
                return None
            plan = plans[arg]
            if plan.passthrough:  # `?a: b`: b stands for a, same value, same extent
                state_stack.pop()
            else:
                size = plan.size
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(_reduce(plan, builder, children))
            state_stack.append(states[state_stack[-1]][plan.origin][1])
            if is_end and state_stack[-1] == end_state:
                return value_stack[-1]

    for token in thread.lex(_Position(state_stack)):
        feed(token, False)
    end = Token.new_borrow_pos("$END", "", token) if token else Token("$END", "", 0, 1, 1)
    result = feed(end, True)
    return result.value if type(result) is Built else result
