"""The canonical layout, case by case: spacing, one item per line, comments in odd
places, strings copied as written, blank lines, brackets, refused input."""

from __future__ import annotations

import pytest

from promptflow_dsl.fmt import NotParsed, format_text
from promptflow_dsl.fmt.tokens import LexError, lex


def fmt(text: str) -> str:
    out = format_text(text, "t.pflow")
    assert format_text(out, "t.pflow") == out, "not idempotent"
    return out


def test_spacing_and_one_statement_per_line() -> None:
    text = ('import   std.text   as t\nmodel m="x" {temperature:0.2,max_tokens:-3}\n'
            'flow f(x:str,n:int=3)->str{a=t.upper(x) b=[i for i in [1,2] if i!=-n]\n'
            'return try a else -1*(2+3)}\n')
    assert fmt(text) == '''import std.text as t
model m = "x" { temperature: 0.2, max_tokens: -3 }

flow f(x: str, n: int = 3) -> str {
  a = t.upper(x)
  b = [i for i in [1, 2] if i != -n]
  return try a else -1 * (2 + 3)
}
'''


def test_every_clause_and_expert_on_a_line_of_its_own() -> None:
    text = ('route r(q: str) -> str { by rule expert a when q=="x" -> f '
            'expert b { instruction "Be brief." } }\n'
            'prompt f(q: str) -> str { system "s" user "{{ q }}" retries 2 params {max_tokens:16} }\n')
    assert fmt(text) == '''route r(q: str) -> str {
  by rule
  expert a when q == "x" -> f
  expert b {
    instruction "Be brief."
  }
}

prompt f(q: str) -> str {
  system "s"
  user "{{ q }}"
  retries 2
  params { max_tokens: 16 }
}
'''


def test_an_if_clause_starts_a_line_but_a_conditional_does_not() -> None:
    text = ('hook h { when "call" if x == 1 }\n'
            'flow f(x: int) -> int { y = 1 if x == 1 else 2 return y }\n')
    assert fmt(text) == '''hook h {
  when "call"
  if x == 1
}

flow f(x: int) -> int {
  y = 1 if x == 1 else 2
  return y
}
'''


def test_fields_of_a_type_one_per_line_commas_kept() -> None:
    text = 'type T { a: str, b: int? c: list[str](min_items=1) = ["q"] }\n'
    assert fmt(text) == '''type T {
  a: str,
  b: int?
  c: list[str](min_items=1) = ["q"]
}
'''


def test_tests_mocks_and_expectations() -> None:
    text = ('test "t" live {mock model m for p replies ["a",\n"b"]\nmock f returns {a: "x"}\n'
            'expect error f(x="1") contains "boom"\nexpect f(x = "1")=="x"}\n')
    assert fmt(text) == '''test "t" live {
  mock model m for p replies ["a",
                              "b"]
  mock f returns {a: "x"}
  expect error f(x="1") contains "boom"
  expect f(x="1") == "x"
}
'''


def test_words_of_a_mock_are_names_in_a_flow() -> None:
    text = 'flow f(x: str) -> str {\nreplies = [x]\n  returns = x\nreturn returns\n}\n'
    assert fmt(text) == 'flow f(x: str) -> str {\n  replies = [x]\n  returns = x\n  return returns\n}\n'


def test_eval_items() -> None:
    text = 'eval e { data "d.jsonl" as T run f(x=row.a) metric acc = 1 threshold acc >= 0.5 }\n'
    assert fmt(text) == '''eval e {
  data "d.jsonl" as T
  run f(x=row.a)
  metric acc = 1
  threshold acc >= 0.5
}
'''


def test_comments_in_odd_places_all_kept() -> None:
    text = '''prompt p(   # params follow
  x: str,   # the input
      # own line in params
  y: int
) # after params
  -> str {  # after brace
      # first in body
  user "a"


  # before close
}   # after close
# between



# many blanks above
flow f(x: str) -> str {
  xs = [1,
    2,   # two
  ]
  return x
  # last
}
# end of file'''
    assert fmt(text) == '''prompt p(   # params follow
  x: str,   # the input
  # own line in params
  y: int
)  # after params
  -> str {  # after brace
  # first in body
  user "a"

  # before close
}   # after close
# between

# many blanks above
flow f(x: str) -> str {
  xs = [1,
        2,  # two
  ]
  return x
  # last
}
# end of file
'''


def test_a_trailing_comment_moves_with_its_code_when_lines_are_split() -> None:
    text = 'prompt p() -> str { system "s" user "u"          # the user message\n}\n'
    assert fmt(text) == 'prompt p() -> str {\n  system "s"\n  user "u"  # the user message\n}\n'


def test_aligned_trailing_comments_stay_aligned() -> None:
    text = ('model a = "x"        # first\nmodel bb = "y"       # second\n')
    assert fmt(text) == text


STRINGS = ('prompt p(x: str) -> str {\n'
           '\tsystem """\n'
           '\t  Keep   these    spaces,   \n'
           '\t\ttabs\tand "quotes" \\n as written.\n'
           '"""\n'
           '  user r"raw \\d+ \\" {{ x }}"\n'
           '    assistant "escapes \\t \\" \\\\ stay"\n'
           '}\n')


def test_strings_are_copied_exactly() -> None:
    out = fmt(STRINGS)
    strings = [t.text for t in lex(STRINGS) if t.kind == "string"]
    assert [t.text for t in lex(out) if t.kind == "string"] == strings
    assert '"""\n\t  Keep   these    spaces,   \n\t\ttabs\tand' in out
    assert out.startswith('prompt p(x: str) -> str {\n  system """\n')
    assert '\n  user r"raw' in out and '\n  assistant "escapes' in out


def test_sketch_template_and_multi_line_return_type() -> None:
    text = '''sketch s(topic: str) -> {
    question: str
      answer: str
} {
decoder sequential
  template """
    Question: [question stop="\\n"]
  Answer: [answer in {"a", "b"}]
"""
}
'''
    assert fmt(text) == '''sketch s(topic: str) -> {
  question: str
  answer: str
} {
  decoder sequential
  template """
    Question: [question stop="\\n"]
  Answer: [answer in {"a", "b"}]
"""
}
'''


def test_long_lines_are_not_wrapped() -> None:
    long = "flow f(x: str) -> str {\n  return " + " + ".join(["x"] * 60) + "\n}\n"
    assert fmt(long) == long


def test_nested_brackets_hanging_and_aligned() -> None:
    text = '''flow f(x: str) -> {a: list[str], b: int} {
return {
a: [
x,
x],
      b: len([y for y in [x]
  if y != ""])
}
}
'''
    assert fmt(text) == '''flow f(x: str) -> {a: list[str], b: int} {
  return {
    a: [
      x,
      x],
    b: len([y for y in [x]
            if y != ""])
  }
}
'''


def test_a_continued_declaration_is_indented() -> None:
    text = 'prompt classify(review: str) -> str =\n"Label: {{ review }}"\n'
    assert fmt(text) == 'prompt classify(review: str) -> str =\n  "Label: {{ review }}"\n'


def test_imports_and_blank_lines_between_declarations() -> None:
    text = ('import "lib/common.pflow" as common\nimport std.text\nmodel m = "x"\n'
            'prompt p(q: str) -> str {\n  user "{{ q }}"\n}\n# about g\nprompt g(q: str) -> str = "{{ q }}"\n'
            'prompt h(q: str) -> str = "{{ q }}"\n')
    assert fmt(text) == ('import "lib/common.pflow" as common\nimport std.text\nmodel m = "x"\n\n'
                         'prompt p(q: str) -> str {\n  user "{{ q }}"\n}\n\n# about g\n'
                         'prompt g(q: str) -> str = "{{ q }}"\nprompt h(q: str) -> str = "{{ q }}"\n')


def test_bom_crlf_and_final_newline() -> None:
    assert fmt('\ufeffmodel m = "x"\r\n\r\n\r\n') == 'model m = "x"\n'
    assert fmt("") == ""
    assert fmt("# only a comment") == "# only a comment\n"


def test_text_that_does_not_parse_is_refused_with_its_location() -> None:
    with pytest.raises(NotParsed) as info:
        format_text('prompt p( -> str = "x"\n', "bad.pflow")
    span = info.value.diagnostic.span
    assert (span.file, span.line, span.col) == ("bad.pflow", 1, 11)


def test_the_token_pass_locates_what_is_no_token() -> None:
    with pytest.raises(LexError) as info:
        lex('model m = "x"\n  $')
    assert (info.value.line, info.value.col) == (2, 3)
    kinds = [(t.kind, t.text) for t in lex('x = r"a" # c\n"""b"""')]
    assert kinds == [("word", "x"), ("punct", "="), ("string", 'r"a"'), ("comment", "# c"),
                     ("string", '"""b"""')]


def test_an_empty_body_is_one_pair_of_braces() -> None:
    assert fmt('test "x" {\n\n}\n') == 'test "x" {}\n'
    assert fmt('route r(q: str) -> str { by llm expert a {\n} }') == (
        'route r(q: str) -> str {\n  by llm\n  expert a {}\n}\n')
    assert fmt('test "x" {   # nothing yet\n}') == 'test "x" {   # nothing yet\n}\n'


def test_words_that_are_keywords_in_one_place_are_names_elsewhere() -> None:
    text = ('flow f(data: list[int], max: int) -> int {\n  run = data[0] - 1\n'
            '  return max(run, -max)\n}\n')
    assert fmt(text) == text
    assert fmt('eval e { data "d.jsonl" as T run f(x=row.a) metric m = -1 threshold m >= 0.5 }') == (
        'eval e {\n  data "d.jsonl" as T\n  run f(x=row.a)\n  metric m = -1\n  threshold m >= 0.5\n}\n')
    assert fmt('route r(q: str) -> str { by llm experts auto from "d.jsonl" max 4 }') == (
        'route r(q: str) -> str {\n  by llm\n  experts auto from "d.jsonl" max 4\n}\n')
