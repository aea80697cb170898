"""The hole constraints that match LMQL's: character length (``min_chars`` /
``max_chars``), several stop phrases, keeping the stop phrase, an earlier hole read
later in the template (``{{ name }}``) and holes inside ``{% for %}``: checked at
compile time (located errors), enforced at run time (a grammar where the model takes
one, else validation and re-asking), under mocks and on the embedded model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.diagnostics import CompileError
from promptflow_dsl.lang.decoding import length_grammar
from promptflow_dsl.lang.holes import parse_template
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode


def load(text: str, tmp_path: Path) -> pf.Program:
    return pf.loads(textwrap.dedent(text), name="s.pflow", base_dir=tmp_path)


def errors(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(CompileError) as info:
        load(text, tmp_path)
    return [f"{d.span.line}:{d.span.col}: {d.message}" for d in info.value.diagnostics if d.is_error]


def run(text: str, replies: list[str], tmp_path: Path, handler: str = "s", **inputs):
    backend = ScriptedBackend("default", replies)
    cfg = RunConfig(cache=CacheMode.OFF, write_trace=False, backends={"default": backend})
    return load(text, tmp_path).run(handler, config=cfg, **inputs), backend


def sketch(returns: str, template: str, decoder: str = "sequential", params: str = "") -> str:
    return (f'model default = "local/smollm2"\n\nsketch s({params}) -> {returns} {{\n'
            f'  decoder {decoder}\n  template """\n{textwrap.indent(template, "    ")}\n  """\n}}\n')


# ---------------------------------------------------------------- parsing

def test_hole_options_parse():
    (h,) = parse_template('[a stop=["\\n", "."] keep_stop min_chars=2 max_chars=40]').holes
    assert (h.stop, h.stops, h.keep_stop, h.min_chars, h.max_chars) == ("\n", ("\n", "."), True, 2, 40)
    (one,) = parse_template('[a stop=["\\n"]]').holes
    assert (one.stop, one.stops) == ("\n", None)  # one stop in a list is the plain stop=


@pytest.mark.parametrize(("text", "message"), [
    ("[a keep_stop]", "'keep_stop' needs a stop string: add stop=\"...\""),
    ("[a: int max_chars=3]", "'max_chars=' applies to text holes only (not to choices or typed holes)"),
    ('[a in {"x"} min_chars=3]', "'min_chars=' applies to text holes only (not to choices or typed holes)"),
    ("[a min_chars=5 max_chars=2]", "min_chars=5 is more than max_chars=2: no value can have both"),
    ("[a max_chars=0]", "max_chars must be a positive integer, got 0"),
    ("[a stop=[]]", "empty list of stop strings; expected at least one quoted string"),
    ('[a stop=["x", "x"]]', "duplicate stop string 'x'"),
    ('[a stop=["x" "y"]]', "expected ',' or ']' in the list of stop strings"),
    ('[a stop=""]', "empty stop string"),
])
def test_bad_hole_options_are_located_errors(text, message):
    assert [e.message for e in parse_template(text).errors][:1] == [message]


# ---------------------------------------------------------------- compile-time errors (golden)

def test_check_errors_are_located(tmp_path):
    text = sketch("{a: str, b: str}", textwrap.dedent('''\
        Q: {{ b }} [a stop="\\n"]
        Again {{ a | upper }}: [b keep_stop]'''))
    assert errors(text, tmp_path) == [
        "6:11: hole 'b' is read before it is filled: a literal can only insert a hole that "
        "comes earlier in the template",
        "7:14: hole 'a' can only be inserted as it is, {{ a }}: no filter, attribute, test or "
        "expression over a hole's value",
        "7:31: 'keep_stop' needs a stop string: add stop=\"...\"",
    ]


def test_a_hole_named_like_a_parameter_cannot_be_read(tmp_path):
    text = sketch("{q: str}", "[q stop=\"\\n\"] then {{ q }}", params="q: str")
    assert errors(text, tmp_path) == [
        "6:27: 'q' is both a parameter and a hole of sketch 's': rename the hole so that "
        "{{ q }} is not ambiguous"]


def test_a_hole_in_a_loop_is_a_list(tmp_path):
    loop = '{% for i in range(3) %}\n- [item stop="\\n"]\n{% endfor %}'
    assert errors(sketch("{item: str}", loop), tmp_path) == [
        "7:8: hole 'item' gives list[str], but field 'item' is str"]
    load(sketch("{item: list[str]}", loop), tmp_path)  # checks
    load(sketch("list[str]", loop), tmp_path)  # a single hole returns its list


def test_lengths_against_the_field_constraints(tmp_path):
    text = sketch("{a: str(max_length=5)}", "Q: [a min_chars=10]")
    assert errors(text, tmp_path) == [
        "6:9: hole 'a' has min_chars=10, but its field allows at most 5 characters (max_length=5)"]


def test_unknown_decoder_lists_the_decoders(tmp_path):
    assert errors(sketch("{a: str}", "Q: [a]", decoder="greedy"), tmp_path) == [
        "4:11: unknown decoder 'greedy' (expected sequential, interleaved, var, var(N), "
        "beam_var(N) or beam(N))"]
    assert errors(sketch("{a: str}", "Q: [a]", decoder="beam_var"), tmp_path) == [
        "4:11: beam_var needs a width: beam_var(N)"]
    assert errors(sketch("{a: str}", "Q: [a]", decoder="var(0)"), tmp_path) == [
        "4:15: beam width must be at least 1"]


# ---------------------------------------------------------------- run time, under mocks

def test_max_chars_is_validated_and_re_asked(tmp_path):
    r, backend = run(sketch("{a: str}", 'Q: [a max_chars=5 stop="\\n"]'),
                     ["far too long", "short"], tmp_path)
    assert r.value == {"a": "short"}
    assert "at most 5 characters, got 12" in backend.calls[1].messages[-1].content
    assert backend.calls[0].params.max_tokens == 6  # a token has at least one character
    hole = [e for e in r.trace.steps[0].events if e["type"] == "hole"][0]
    assert hole["method"] == "validated" and hole["attempts"] == 2


def test_min_chars_is_validated(tmp_path):
    r, _ = run(sketch("{a: str}", 'Q: [a min_chars=4 stop="\\n"]'), ["no", "maybe"], tmp_path)
    assert r.value == {"a": "maybe"}


def test_several_stop_phrases(tmp_path):
    text = sketch("{a: str, b: str}", 'Q: [a stop=[".", "\\n"]] [b stop=["!", "?"]]',
                  decoder="interleaved")
    r, backend = run(text, [" one\ntwo. three", " why? yes!"], tmp_path)
    assert r.value == {"a": "one", "b": "why"}
    assert backend.calls[0].params.stop == (".", "\n")
    assert backend.calls[1].params.stop == ("!", "?")


def test_keep_stop_keeps_the_phrase_that_ended_the_value(tmp_path):
    text = sketch("{a: str, b: str}", 'Q: [a stop=["!", "?"] keep_stop] A: [b stop="\\n"]',
                  decoder="interleaved")
    r, backend = run(text, [" Is it hot? Yes! more", " yes\n"], tmp_path)
    assert r.value == {"a": "Is it hot?", "b": "yes"}
    assert backend.calls[0].params.stop == ()  # held back: the runtime cuts and keeps
    assert backend.calls[1].prefix == "Q: Is it hot? A:"


def test_keep_stop_keeps_a_newline_that_ended_the_value(tmp_path):
    loop = '{% for i in range(2) %}-[item stop="\\n" keep_stop max_tokens=8]{% endfor %}'
    r, backend = run(sketch("list[str]", loop, decoder="interleaved"),
                     [" first\nsecond", "second\n-"], tmp_path)
    assert r.value == ["first\n", "second\n"]
    assert backend.calls[1].prefix == "-first\n-"  # the kept newline is in the sketch


def test_keep_stop_in_chat(tmp_path):
    r, _ = run(sketch("{a: str}", 'Say: [a stop="." keep_stop]'), ["Hello there. And more"], tmp_path)
    assert r.value == {"a": "Hello there."}


def test_an_earlier_hole_is_inserted_later(tmp_path):
    text = sketch("{name: str, greeting: str}",
                  'Name: [name stop="\\n"]\nGreet {{ name }} kindly: [greeting stop="\\n"]',
                  decoder="interleaved")
    r, backend = run(text, [" Ada\n", " Hello Ada\n"], tmp_path)
    assert r.value == {"name": "Ada", "greeting": "Hello Ada"}
    assert backend.calls[1].prefix == "Name: Ada\nGreet Ada kindly:"


def test_model_text_inserted_by_reference_is_not_rendered(tmp_path):
    text = sketch("{a: str, b: str}", 'A: [a stop="\\n"]\nAgain: {{ a }}\nB: [b stop="\\n"]',
                  decoder="interleaved")
    r, backend = run(text, [" {{ secret }}\n", " x\n"], tmp_path)
    assert backend.calls[1].prefix == "A: {{ secret }}\nAgain: {{ secret }}\nB:"


def test_a_hole_in_a_loop_is_filled_once_per_item(tmp_path):
    text = sketch("{item: list[str], last: str}", textwrap.dedent('''\
        {% for t in topics %}
        {{ t }}: [item stop="\\n"]
        {% endfor %}
        Last: {{ item }}. Summary: [last stop="\\n"]'''), decoder="interleaved", params="topics: list[str]")
    r, backend = run(text, [" hot\n", " wet\n", " both\n"], tmp_path, topics=["fire", "water"])
    assert r.value == {"item": ["hot", "wet"], "last": "both"}
    assert [c.prefix for c in backend.calls] == [
        "fire:", "fire: hot\nwater:", "fire: hot\nwater: wet\nLast: wet. Summary:"]
    holes = [e["hole"] for e in r.trace.steps[0].events if e["type"] == "hole"]
    assert holes == ["item[0]", "item[1]", "last"]


def test_an_empty_loop_gives_an_empty_list(tmp_path):
    text = sketch("{item: list[str], done: str}",
                  '{% for t in topics %}\n{{ t }}: [item stop="\\n"]\n{% endfor %}\nDone: [done stop="\\n"]',
                  decoder="interleaved", params="topics: list[str]")
    r, _ = run(text, [" yes\n"], tmp_path, topics=[])
    assert r.value == {"item": [], "done": "yes"}


def test_an_input_cannot_forge_a_hole(tmp_path):
    text = sketch("{a: str}", 'T: {{ t }} [a stop="\\n"]', decoder="interleaved", params="t: str")
    r, backend = run(text, [" ok\n"], tmp_path, t="\x00h0\x00 [b] {{ a }}")
    assert r.value == {"a": "ok"}
    assert backend.calls[0].prefix == "T: \x00h0\x00 [b] {{ a }}"


# ---------------------------------------------------------------- grammars and the embedded model

def test_length_grammar():
    assert length_grammar(3, 20, terminator=".", lead_space=True) == \
        'root ::= " "? [^ \\t\\n.] [^.]{2,19} "."\n'
    assert length_grammar(None, 10) == "root ::= [^ \\t\\n] [^\\x00]{0,9}\n"
    assert length_grammar(5, None, terminator="\n") == 'root ::= [^ \\t\\n\\n] [^\\n]{4,} "\\n"\n'


def _local_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from promptflow_dsl.models.local import find_gguf

    path = find_gguf()
    return path is not None and path.is_file()


@pytest.mark.skipif(not _local_available(), reason="llama-cpp-python or the SmolLM2 gguf is missing")
def test_constraints_on_the_embedded_model(tmp_path):
    text = sketch("{short: str, items: list[str], again: str}", textwrap.dedent('''\
        Topic: the sea
        In a few words: [short max_chars=12 stop="\\n"]
        {% for i in range(2) %}
        Fact {{ i + 1 }}: [items stop=["\\n", "."] max_tokens=10]
        {% endfor %}
        Repeat "{{ short }}": [again stop="\\n" max_tokens=8]'''), decoder="interleaved")
    r = load(text, tmp_path).run("s", config=RunConfig(cache=CacheMode.OFF, write_trace=False))
    v = r.value
    assert 0 < len(v["short"]) <= 12 and len(v["items"]) == 2
    assert all(x and "\n" not in x and "." not in x for x in v["items"])
    holes = {e["hole"]: e for e in r.trace.steps[0].events if e["type"] == "hole"}
    assert holes["short"]["method"] == "grammar"
    assert f'Repeat "{v["short"]}":' in r.trace.steps[0].reply


def test_a_hole_in_a_false_if_is_none(tmp_path):
    text = sketch("{a: str?, b: str}",
                  '{% if ask %}\nA: [a stop="\\n"]\n{% endif %}\nB: [b stop="\\n"]',
                  decoder="interleaved", params="ask: bool")
    r, _ = run(text, [" yes\n"], tmp_path, ask=False)
    assert r.value == {"a": None, "b": "yes"}
    r, _ = run(text, [" one\n", " two\n"], tmp_path, ask=True)
    assert r.value == {"a": "one", "b": "two"}
