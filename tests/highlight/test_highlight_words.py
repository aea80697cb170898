"""The highlighters' word lists (``promptflow_dsl/highlight/words.py``) stay equal to
the language: the grammar's keywords, the clause words of the kinds registry, the
checker's built-ins; and the checked-in TextMate grammar is what its generator writes
from them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from corpus_paths import REPO
from lark import Lark

from promptflow_dsl.check.builtins import BUILTINS, COUNTERS
from promptflow_dsl.check.env import SCALARS
from promptflow_dsl.highlight import words as w
from promptflow_dsl.kinds import registry
from promptflow_dsl.lsp.completion import HOLE_OPTIONS
from promptflow_dsl.syntax.clauses import specs


def grammar_keywords() -> set[str]:
    """Every word the Lark grammar spells out (string literals and the keyword terminals)."""
    parser = Lark.open(str(REPO / "grammar" / "pflow.lark"), parser="lalr")
    return {t.pattern.value for t in parser.terminals
            if t.pattern.type == "str" and re.fullmatch(r"[a-z_]+", t.pattern.value)}


def test_keywords_are_the_grammars():
    assert w.KEYWORDS == grammar_keywords()


def test_handler_kinds_are_the_registrys():
    assert w.HANDLER_KINDS == registry.KINDS
    assert set(w.HANDLER_KINDS) <= set(w.DECLARATIONS)


def test_clause_words_are_every_clause_bodys():
    every = {word for spec in specs().values() for word in spec}
    assert set(w.CLAUSES) == every
    assert set(w.TEMPLATE_CLAUSES) <= every and set(w.HOLE_CLAUSES) <= set(w.TEMPLATE_CLAUSES)
    assert "template" in specs()["sketch"] and all(c in specs()["prompt"] for c in
                                                    ("system", "user", "assistant", "completion"))


def test_builtins_are_the_checkers():
    assert set(w.FUNCTIONS) == set(BUILTINS)
    assert set(w.COUNTERS) == set(COUNTERS)
    assert set(w.TYPES) == (set(SCALARS) - {"none"}) | {"list", "dict"}


def test_hole_options_are_the_ones_completion_offers():
    offered = {re.match(r"[a-z_]+", label).group() for label, _ in HOLE_OPTIONS
               if re.match(r"[a-z_]+", label) and not label.startswith("in ")}
    assert set(w.HOLE_OPTIONS) == offered


def test_textmate_grammar_is_generated_from_the_lists():
    script = REPO / "editors" / "vscode" / "syntaxes" / "generate.py"
    if not script.exists():
        pytest.skip("no editors/ folder in this copy of the project (an sdist leaves it out)")
    r = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
