"""Bounded fuzzing of the whole compile side: mutated copies of the example programs.

Each program is an example of ``examples/`` changed by a few mutations (characters
replaced, spans deleted or duplicated, tokens inserted — keywords, brackets, quotes,
Jinja and hole syntax, huge numbers, deep nesting, NULs, surrogate escapes) and
checked with ``promptflow_dsl.loads`` beside the example's own files.  It must give a
program or raise ``CompileError``: any other exception is a bug.  The examples are
many short runs (``max_examples`` per test, a per-example deadline), a few thousand
programs in all, the same ones on every run.  ``PFLOW_FUZZ_SCALE=N`` runs N times as
many, from a random seed, to hunt for new bugs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptflow_dsl import CompileError, loads

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").rglob("*.pflow"))
TEXTS = {p: p.read_text(encoding="utf-8") for p in EXAMPLES}

TOKENS = [
    "flow", "prompt", "tool", "route", "sketch", "decompose", "hook", "test", "eval", "model",
    "type", "import", "return", "expert", "experts auto from", "max", "when", "mock", "expect",
    "error", "replies", "returns", "data", "run", "metric", "threshold", "as", "try", "else",
    "if", "for", "in", "not", "and", "or", "contains", "true", "false", "none", "live", "embed",
    "python", "{", "}", "(", ")", "[", "]", ",", ":", ".", "=", "==", "->", "|", "?", "+", "-",
    "*", "/", "%", "<=", '"', '"""', 'r"', "'", "#", "\n", " ", "\t", "\\", "x", "_", "str",
    "int", "list[str]", "str(max_length=3)", "{{", "}}", "{%", "%}", "{#", "[a]", "[[",
    '[h stop="\\n" max_tokens=9]', '[c in {"a", "b"}]', "[n: int]", "beam(3)", "decoder",
    "9" * 5000, "9" * 400, "0", "-1", "1e999", "1.5", "(" * 150, ")" * 150, "[" * 150,
    "{a: " * 120, "\x00", "\\u0000", "\\ud800", "\ufeff", "\r", "read_text(\"x\")",
    'read_jsonl("' + "a" * 300 + '")', '"' + "a/" * 2100 + '"', "{{ 9**(9**9) }}",
    "{{ 'x'|center(2000000000) }}", "{{ 'x' * 2000000000 }}", "flowmain", "returnx",
]


@dataclass(frozen=True)
class Mutation:
    kind: str  # replace | delete | duplicate | insert
    at: float  # where, as a fraction of the text
    size: int
    token: str


MUTATION = st.builds(
    Mutation,
    kind=st.sampled_from(["replace", "delete", "duplicate", "insert", "insert"]),
    at=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    size=st.integers(min_value=1, max_value=80),
    token=st.one_of(st.sampled_from(TOKENS), st.text(min_size=1, max_size=4)),
)


def mutate(text: str, mutations: list[Mutation]) -> str:
    for m in mutations:
        i = int(m.at * len(text))
        if m.kind == "replace":
            text = text[:i] + m.token[: m.size] + text[i + 1:]
        elif m.kind == "delete":
            text = text[:i] + text[i + m.size:]
        elif m.kind == "duplicate":
            text = text[:i] + text[i:i + m.size] * 2 + text[i + m.size:]
        else:
            text = text[:i] + m.token + text[i:]
    return text


def compiles_or_reports(path: Path, text: str) -> None:
    """``loads`` gives a program or raises ``CompileError`` whose errors are located."""
    try:
        loads(text, name=path.name, base_dir=path.parent)
    except CompileError as exc:
        assert exc.diagnostics, "a CompileError carries its diagnostics"
        for d in exc.diagnostics:
            assert d.span.line >= 1 and d.span.col >= 1, d


SCALE = int(os.environ.get("PFLOW_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=5000 if SCALE == 1 else None,
                    derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


FUZZ = fuzz(700)


@FUZZ
@given(st.sampled_from(EXAMPLES), st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_examples_compile_or_report(path, mutations):
    compiles_or_reports(path, mutate(TEXTS[path], mutations))


@FUZZ
@given(st.sampled_from(EXAMPLES), st.lists(st.tuples(st.floats(0, 1), st.sampled_from(TOKENS)),
                                           min_size=1, max_size=8))
def test_examples_with_tokens_inserted_compile_or_report(path, inserts):
    text = TEXTS[path]
    for at, token in inserts:
        i = int(at * len(text))
        text = text[:i] + " " + token + " " + text[i:]
    compiles_or_reports(path, text)


@fuzz(600)
@given(st.sampled_from(EXAMPLES), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                           min_size=1, max_size=6))
def test_examples_with_bytes_flipped_compile_or_report(path, flips):
    data = bytearray(TEXTS[path].encode("utf-8"))
    for at, byte in flips:
        data[min(int(at * len(data)), len(data) - 1)] = byte
    compiles_or_reports(path, data.decode("utf-8", errors="surrogateescape"))


@pytest.mark.parametrize("depth", [99, 100, 101, 5000])
@pytest.mark.parametrize("opener,closer", [("(", ")"), ("[", "]"), ("{a: ", "}"), ("-", "")])
def test_deep_nesting_compiles_or_reports(depth, opener, closer):
    text = f'model m = "echo"\nflow f(x: int) -> any {{ return {opener * depth}1{closer * depth} }}\n'
    compiles_or_reports(REPO / "examples" / "deep.pflow", text)
