"""Tests for the sketch-template hole lexer (promptflow_dsl.lang.holes)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptflow_dsl.lang.holes import (
    Hole,
    HoleError,
    Literal,
    SketchTemplate,
    offset_to_line_col,
    parse_template,
)

OPTIONS_HINT = "expected stop=, in {...}, : TYPE, regex= or max_tokens="


def only_hole(text: str) -> Hole:
    result = parse_template(text)
    assert result.errors == ()
    (hole,) = result.holes
    return hole


def errors(text: str) -> list[tuple[str, int, int]]:
    result = parse_template(text)
    assert all(isinstance(e, HoleError) for e in result.errors)
    return [(e.message, e.start, e.end) for e in result.errors]


def assert_well_formed(text: str, result: SketchTemplate) -> None:
    """Segments tile the text; literals are merged and non-empty; offsets are in range."""
    pos = 0
    previous = None
    for seg in result.segments:
        assert seg.start == pos and seg.end > seg.start
        if isinstance(seg, Literal):
            assert seg.text and not isinstance(previous, Literal)
        else:
            assert text[seg.start] == "[" and seg.name_start == seg.start + 1
            assert text[seg.name_start:].startswith(seg.name)
        pos, previous = seg.end, seg
    assert pos == len(text)
    for err in result.errors:
        assert 0 <= err.start <= err.end <= len(text) and err.message


# -- the example from the language spec -----------------------------------------

EXAMPLE = (
    "Claim: {{ claim }}\n"
    'Let\'s think step by step. [reasoning stop="\\n" max_tokens=80]\n'
    'Therefore the claim is [verdict in {"true", "false"}].\n'
)


def test_spec_example():
    result = parse_template(EXAMPLE)
    assert result.errors == ()
    first, reasoning, middle, verdict, last = result.segments
    assert first == Literal("Claim: {{ claim }}\nLet's think step by step. ", 0, 45)
    assert reasoning == Hole("reasoning", 45, 80, stop="\n", max_tokens=80, name_start=46)
    assert middle == Literal("\nTherefore the claim is ", 80, 104)
    assert verdict == Hole("verdict", 104, 134, choices=("true", "false"), name_start=105)
    assert last == Literal(".\n", 134, 136)
    assert result.holes == (reasoning, verdict)
    assert EXAMPLE[reasoning.start:reasoning.end] == '[reasoning stop="\\n" max_tokens=80]'


def test_source_reconstruction():
    text = 'a [[b]] {{ [[c] }} [d: int] e'
    result = parse_template(text)
    rebuilt = "".join(s.text if isinstance(s, Literal) else text[s.start:s.end]
                      for s in result.segments)
    assert rebuilt == 'a [b]] {{ [[c] }} [d: int] e'


# -- each hole kind ---------------------------------------------------------------


def test_bare_hole():
    assert only_hole("[answer]") == Hole("answer", 0, 8, name_start=1)


def test_underscore_and_digits_in_name():
    assert only_hole("[_a1_B2]").name == "_a1_B2"


def test_stop():
    assert only_hole('[x stop="."]').stop == "."


@pytest.mark.parametrize("raw, value", [
    (r"\n", "\n"), (r"\t", "\t"), (r"\"", '"'), (r"\\", "\\"), (r"\u00e9", "é"),
    (r"\x41", "A"), (r"\101", "A"), (r"\U0001F600", "\U0001F600"),
    (r"\N{LATIN SMALL LETTER E WITH ACUTE}", "é"), (r"\'", "'"), ("é", "é"),
    ("a\\\nb", "ab"), ("]", "]"), ("two\nlines", "two\nlines"),
])
def test_stop_escapes(raw, value):
    assert only_hole(f'[x stop="{raw}"]').stop == value


def test_choices():
    assert only_hole('[x in {"a", "b", "c"}]').choices == ("a", "b", "c")


def test_choices_single_trailing_comma_and_whitespace():
    assert only_hole('[x in{ "a" , }]').choices == ("a",)
    assert only_hole('[x in {\n  "a",\n  "b",\n}]').choices == ("a", "b")


def test_choices_escapes():
    assert only_hole(r'[x in {"a\nb", "\u00e9", "q\"", "]"}]').choices == (
        "a\nb", "é", 'q"', "]")


@pytest.mark.parametrize("type_name", ["int", "float", "bool", "str"])
def test_types(type_name):
    assert only_hole(f"[n: {type_name}]").type == type_name


@pytest.mark.parametrize("text", ["[n:int]", "[n :int]", "[n : int]", "[n:\tint]",
                                  '[n stop="x" : int]', '[n stop="x": int]'])
def test_type_spacing(text):
    assert only_hole(text).type == "int"


def test_default_type_is_str():
    assert only_hole("[x]").type == "str"


def test_raw_regex():
    assert only_hole(r'[x regex=r"\d+"]').regex == r"\d+"
    assert only_hole(r'[x regex=r"a\"b"]').regex == r"a\"b"


def test_plain_regex_processes_escapes():
    assert only_hole(r'[x regex="\\d+"]').regex == r"\d+"
    assert only_hole(r'[x regex="a\tb"]').regex == "a\tb"


def test_plain_regex_with_python_invalid_escape_is_error():
    assert errors(r'[x regex="\d+"]') == [(r"invalid escape sequence '\d'", 10, 12)]


def test_max_tokens():
    assert only_hole("[x max_tokens=12]").max_tokens == 12
    assert only_hole("[x max_tokens=007]").max_tokens == 7


def test_whitespace_around_equals():
    assert only_hole('[x stop = "." max_tokens =\n3]') == Hole(
        "x", 0, 29, stop=".", max_tokens=3, name_start=1)


def test_all_options_any_order():
    expected = dict(stop="\n", regex="[0-9]+", max_tokens=5, type="int")
    parts = ['stop="\\n"', 'regex=r"[0-9]+"', "max_tokens=5", ": int"]
    for order in itertools.permutations(parts):
        hole = only_hole("[n " + " ".join(order) + "]")
        assert {k: getattr(hole, k) for k in expected} == expected, order


def test_choices_with_other_options():
    hole = only_hole('[v max_tokens=3 in {"yes","no"} : str stop="!"]')
    assert (hole.choices, hole.type, hole.max_tokens, hole.stop) == (
        ("yes", "no"), "str", 3, "!")


def test_multiline_hole():
    text = 'Answer: [answer stop="\\n"\n    max_tokens=40\n    : str\n] done'
    result = parse_template(text)
    assert result.errors == ()
    assert result.segments == (
        Literal("Answer: ", 0, 8),
        Hole("answer", 8, len(text) - 5, stop="\n", max_tokens=40, name_start=9),
        Literal(" done", len(text) - 5, len(text)),
    )


def test_close_bracket_inside_string_does_not_close_hole():
    hole = only_hole('[x stop="]" regex=r"[a]"]')
    assert (hole.stop, hole.regex, hole.end) == ("]", "[a]", 25)


def test_several_holes_and_offsets():
    result = parse_template("[a] and [b: int].")
    assert result.segments == (
        Hole("a", 0, 3, name_start=1),
        Literal(" and ", 3, 8),
        Hole("b", 8, 16, type="int", name_start=9),
        Literal(".", 16, 17),
    )


# -- literal brackets ---------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "[1, 2]", "[ x]", "[]", "[", "]", "x]", "[x", "[x.y]", "[x-1]", "[x,y]", "[1x]",
    "[x\tstop]", "[é]", "a[0]", "[x\n]", "]]",
])
def test_non_holes_are_literal(text):
    result = parse_template(text)
    assert result.errors == ()
    assert result.segments == (Literal(text, 0, len(text)),)


def test_newline_right_after_name_is_not_a_hole():
    # The spec only opens a hole on `]`, a space or `:` after the name.
    text = '[answer\n stop="x"]'
    assert parse_template(text).segments == (Literal(text, 0, len(text)),)


def test_double_bracket_is_escaped_bracket():
    result = parse_template("[[x]] and [[1]]")
    assert result.errors == ()
    assert result.segments == (Literal("[x]] and [1]]", 0, 15),)


def test_double_bracket_then_hole():
    result = parse_template("[[[x]")
    assert result.segments == (Literal("[", 0, 2), Hole("x", 2, 5, name_start=3))
    result = parse_template("[[[[x]")
    assert result.segments == (Literal("[[x]", 0, 6),)


def test_literals_merge_around_escapes_and_jinja():
    result = parse_template("a[[b{{ c }}[[d{ e")
    assert result.segments == (Literal("a[b{{ c }}[d{ e", 0, 17),)


# -- Jinja regions ------------------------------------------------------------------


@pytest.mark.parametrize("region", [
    "{{ items[x] }}", "{{ [x] }}", "{% for x in [a] %}", "{# [note] #}", "{{ a[[b]] }}",
    '{{ "}}[x]" }}', "{% set s = '%}[x]' %}", "{{- [x] -}}", "{%- if [y] -%}",
])
def test_holes_not_recognised_in_jinja(region):
    text = region + " [h]"
    result = parse_template(text)
    assert result.errors == ()
    assert result.segments == (
        Literal(region + " ", 0, len(region) + 1),
        Hole("h", len(region) + 1, len(text), name_start=len(region) + 2),
    )


def test_jinja_comment_does_not_treat_quotes_as_strings():
    text = '{# it"s #}[x]'
    assert parse_template(text).holes == (Hole("x", 10, 13, name_start=11),)


@pytest.mark.parametrize("text", ["{{ [x] ", "{% [x]", "{# [x] }}", "{{ '}} [x]"])
def test_unterminated_jinja_runs_to_end(text):
    result = parse_template(text)
    assert result.errors == ()
    assert result.segments == (Literal(text, 0, len(text)),)


def test_single_brace_is_literal():
    text = "{x} [y] {"
    result = parse_template(text)
    assert result.segments == (Literal("{x} ", 0, 4), Hole("y", 4, 7, name_start=5),
                               Literal(" {", 7, 9))


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("[x foo=1]", [(f"unknown hole option 'foo'; {OPTIONS_HINT}", 3, 6)]),
    ("[x in_ {}]", [(f"unknown hole option 'in_'; {OPTIONS_HINT}", 3, 6)]),
    ("[x 5]", [(f"unexpected '5' in hole; {OPTIONS_HINT} or ']'", 3, 4)]),
    ('[x "a"]', [(f"unexpected '\"' in hole; {OPTIONS_HINT} or ']'", 3, 4)]),
    ('[x stop"a"]', [("expected '=' after 'stop'", 7, 8)]),
    ("[x stop=a]", [("expected a double-quoted string after 'stop='", 8, 9)]),
    ("[x stop='a']", [("expected a double-quoted string after 'stop='", 8, 9)]),
    ('[x stop="a"max_tokens=1]',
     [("expected whitespace or ']' after an option, found 'm'", 11, 12)]),
    ('[x stop="a" stop="b"]', [("duplicate hole option 'stop='", 12, 20)]),
    ("[x: int :str]", [("duplicate hole option ': TYPE'", 8, 12)]),
    ('[x in {"a"} in {"b"}]', [("duplicate hole option 'in {...}'", 12, 20)]),
    ("[x max_tokens=1 max_tokens=2]", [("duplicate hole option 'max_tokens='", 16, 28)]),
    ('[x regex="a" regex="b"]', [("duplicate hole option 'regex='", 13, 22)]),
    ("[x:]", [("expected a type name after ':' (int, float, bool or str)", 3, 4)]),
    ("[x: 3]", [("expected a type name after ':' (int, float, bool or str)", 4, 5)]),
    ("[x: integer]", [("unknown type 'integer'; expected int, float, bool or str", 4, 11)]),
    ("[x: Int]", [("unknown type 'Int'; expected int, float, bool or str", 4, 7)]),
    ("[x in]", [("expected '{' after 'in'", 5, 6)]),
    ('[x in ["a"]]', [("expected '{' after 'in'", 6, 7)]),
    ("[x in {}]", [("empty choice set; expected at least one quoted string", 6, 8)]),
    ("[x in { }]", [("empty choice set; expected at least one quoted string", 6, 9)]),
    ("[x in {,}]", [("expected a double-quoted string in choice set", 7, 8)]),
    ("[x in {a}]", [("expected a double-quoted string in choice set", 7, 8)]),
    ('[x in {"a" "b"}]', [("expected ',' or '}' in choice set", 11, 12)]),
    ('[x in {"a",, "b"}]', [("expected a double-quoted string in choice set", 11, 12)]),
    ('[x in {"a", "b", "a"}]', [("duplicate choice 'a'", 17, 20)]),
    (r'[x in {"\n", "\u000a"}]', [(r"duplicate choice '\n'", 13, 21)]),
    ('[x in {"a"}: int]',
     [("'in {...}' cannot be combined with ': int'; choices are strings", 11, 16)]),
    ('[x: float in {"a"}]',
     [("'in {...}' cannot be combined with ': float'; choices are strings", 10, 18)]),
    ('[x: bool in {"a"}]',
     [("'in {...}' cannot be combined with ': bool'; choices are strings", 9, 17)]),
    ('[x regex="a" in {"a"}]',
     [("'in {...}' cannot be combined with 'regex='; choices are strings", 13, 21)]),
    ('[x regex="str" in {"a"}]',
     [("'in {...}' cannot be combined with 'regex='; choices are strings", 15, 23)]),
    ('[x regex=r"(" ]',
     [("invalid regex: missing ), unterminated subpattern at position 0", 9, 13)]),
    ('[x regex="a{2,1}"]',
     [("invalid regex: min repeat greater than max repeat at position 2", 9, 17)]),
    ("[x regex=(]", [("expected a double-quoted string after 'regex=' (r\"...\" or \"...\")",
                      9, 10)]),
    ("[x regex=r(]", [("expected a double-quoted string after 'regex=' (r\"...\" or \"...\")",
                       10, 11)]),
    ("[x max_tokens=0]", [("max_tokens must be a positive integer, got 0", 14, 15)]),
    ("[x max_tokens=000]", [("max_tokens must be a positive integer, got 0", 14, 17)]),
    ("[x max_tokens=-1]", [("expected a positive integer after 'max_tokens='", 14, 15)]),
    ("[x max_tokens=ten]", [("expected a positive integer after 'max_tokens='", 14, 15)]),
    ("[x max_tokens=1.5]", [("expected a positive integer after 'max_tokens='", 15, 16)]),
    ("[x max_tokens=10k]", [("expected a positive integer after 'max_tokens='", 16, 17)]),
    ("[x max_tokens=" + "9" * 19 + "]", [("max_tokens is too large", 14, 33)]),
    (r'[x stop="\d"]', [(r"invalid escape sequence '\d'", 9, 11)]),
    (r'[x stop="\x4"]', [(r"truncated '\x' escape; expected 2 hex digits", 9, 11)]),
    (r'[x stop="\u12g4"]', [(r"truncated '\u' escape; expected 4 hex digits", 9, 11)]),
    (r'[x stop="\U0001F60"]', [(r"truncated '\U' escape; expected 8 hex digits", 9, 11)]),
    (r'[x stop="\N"]', [(r"malformed '\N' escape; expected \N{NAME}", 9, 11)]),
    (r'[x stop="\N{NO SUCH CHAR}"]',
     [(r"invalid '\N' escape: unknown unicode character name", 9, 25)]),
    (r'[x stop="\U00110000"]', [(r"invalid '\U' escape: illegal unicode character", 9, 19)]),
    (r'[x in {"ok", "\q"}]', [(r"invalid escape sequence '\q'", 14, 16)]),
    ('[x stop="abc', [("unterminated string; expected a closing '\"'", 8, 12)]),
    ('[x stop="a]', [("unterminated string; expected a closing '\"'", 8, 11)]),
    ('[x stop="a\\"]', [("unterminated string; expected a closing '\"'", 8, 13)]),
    ("[x ", [("unterminated hole 'x'; expected ']'", 0, 3)]),
    ("[x:", [("unterminated hole 'x'; expected ']'", 0, 3)]),
    ("[x stop=", [("unterminated hole 'x'; expected ']'", 0, 8)]),
    ('[x in {"a",', [("unterminated hole 'x'; expected ']'", 0, 11)]),
    ('[x max_tokens=3\n stop="a"\n', [("unterminated hole 'x'; expected ']'", 0, 26)]),
    ("[x] [x]", [("duplicate hole name 'x'", 5, 6)]),
    ("[abc: int]\n[abc]", [("duplicate hole name 'abc'", 12, 15)]),
])
def test_error_messages_and_offsets(text, expected):
    assert errors(text) == expected


def test_unknown_option_then_unterminated():
    assert errors("[x foo bar") == [
        ("unterminated hole 'x'; expected ']'", 0, 10),
        (f"unknown hole option 'foo'; {OPTIONS_HINT}", 3, 6),
    ]


def test_recovery_skips_to_closing_bracket_outside_strings():
    text = '[x foo="]" stop="a"] then [y: nope] and [z]'
    result = parse_template(text)
    assert [(e.message, e.start) for e in result.errors] == [
        (f"unknown hole option 'foo'; {OPTIONS_HINT}", 3),
        ("unknown type 'nope'; expected int, float, bool or str", 30),
    ]
    assert [(h.name, h.start, h.end) for h in result.holes] == [
        ("x", 0, 20), ("y", 26, 35), ("z", 40, 43)]
    assert_well_formed(text, result)


def test_recovery_after_string_error_resumes_after_the_string():
    # The bad escape is inside "\q]"; the ] in that string must not close the hole.
    result = parse_template(r'[x stop="\q]" max_tokens=2] [y]')
    assert [e.message for e in result.errors] == [r"invalid escape sequence '\q'"]
    assert [(h.name, h.end) for h in result.holes] == [("x", 27), ("y", 31)]


def test_errored_hole_keeps_parsed_options():
    result = parse_template('[x stop="." max_tokens=0 : int]')
    (hole,) = result.holes
    assert (hole.stop, hole.max_tokens, hole.type, hole.end) == (".", None, "str", 31)


def test_conflict_and_duplicate_name_together():
    assert errors('[v] [v: int in {"a"}]') == [
        ("duplicate hole name 'v'", 5, 6),
        ("'in {...}' cannot be combined with ': int'; choices are strings", 12, 20),
    ]


def test_errors_in_many_holes_all_reported_in_order():
    text = "[a foo]\n[b: x]\n[c max_tokens=0]\n[a]"
    assert [(e.message.split(";")[0], e.start) for e in parse_template(text).errors] == [
        ("unknown hole option 'foo'", 3),
        ("unknown type 'x'", 12),
        ("max_tokens must be a positive integer, got 0", 29),
        ("duplicate hole name 'a'", 33),
    ]


def test_error_position_in_multiline_hole():
    text = 'x\n[answer stop="\\n"\n    max_tokens=oops]'
    (err,) = parse_template(text).errors
    assert offset_to_line_col(text, err.start) == (2, 15)


# -- offset_to_line_col -------------------------------------------------------------


@pytest.mark.parametrize("offset, expected", [
    (0, (0, 0)), (2, (0, 2)), (3, (0, 3)), (4, (1, 0)), (6, (1, 2)), (7, (2, 0)),
    (8, (2, 1)), (-5, (0, 0)), (99, (2, 1)),
])
def test_offset_to_line_col(offset, expected):
    assert offset_to_line_col("abc\nde\nf", offset) == expected


def test_offset_to_line_col_empty_and_crlf():
    assert offset_to_line_col("", 0) == (0, 0)
    assert offset_to_line_col("a\r\nb", 3) == (1, 0)


# -- never raises ---------------------------------------------------------------------

SYNTAX_ALPHABET = st.sampled_from(list('[]{}%#"\\\' :=,\n\trxin0123stopregexmax_tokens') +
                                  ["é", "\ud800", "\x00"])
FRAGMENTS = st.sampled_from([
    "[", "]", "[[", "{{", "}}", "{%", "%}", "{#", "#}", '"', "\\", "[x", "[x ", "[y:",
    "stop=", "regex=", 'regex=r"', "max_tokens=", "in {", "}", ",", ": int", ": bool",
    "\\n", "\\u00e9", "\\N{", "\\x", "(", "0", "42", " ", "\n", "abc", "é",
])


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text):
    assert_well_formed(text, parse_template(text))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(SYNTAX_ALPHABET, max_size=60),
                 st.lists(FRAGMENTS, max_size=25).map("".join)))
def test_never_raises_on_template_like_text(text):
    assert_well_formed(text, parse_template(text))


@settings(max_examples=500, deadline=None)
@given(st.lists(FRAGMENTS.filter(lambda f: "{" not in f), max_size=25).map("".join))
def test_literal_text_is_source_with_double_brackets_collapsed(text):
    for seg in parse_template(text).segments:
        if isinstance(seg, Literal):
            assert seg.text == text[seg.start:seg.end].replace("[[", "[")

