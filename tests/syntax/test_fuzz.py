"""Stage parse/build: no input text makes the front end raise."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promptflow_dsl as pf
from promptflow_dsl.syntax import parse_module
from promptflow_dsl.syntax.source import SourceFile, decode, normalize

TOKENS = ["flow", "prompt", "tool", "type", "model", "hook", "route", "sketch", "decompose",
          "test", "import", "return", "if", "else", "for", "in", "not", "and", "or", "expect",
          "mock", "try", "{", "}", "(", ")", "[", "]", ",", ":", "->", "=", "==", ".", "+", "-", "?",
          "|", "x", "f", "str", "int", "list", '"s"', 'r"\\d"', '"""t {{ x }}"""', "1", "2.5",
          "none", "true", "\n", " ", "#c\n", "user", "system", "when", "run", "by", "expert"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str):
    m, diags = parse_module(SourceFile("f.pflow", normalize(text)))
    assert m is not None or diags


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_never_raises_through_the_checker(tokens: list[str]):
    text = " ".join(tokens)
    try:
        pf.loads(text)
    except pf.CompileError as exc:
        assert exc.diagnostics


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_report(data: bytes):
    text, diag = decode(data, "f.pflow")
    assert (text is None) != (diag is None)
    if text is not None:
        parse_module(SourceFile("f.pflow", text))
