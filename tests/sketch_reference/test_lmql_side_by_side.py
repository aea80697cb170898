"""The LMQL side of ``bench/sketch_reference.py``: the constraint checks both sides'
values go through, and a broken LMQL interpreter reported per query instead of a hang."""

from __future__ import annotations

import sys

from corpus_paths import load_bench


def _bench():
    return load_bench("sketch_reference")


def _chars(text: str) -> int:  # a stand-in token counter: one token per character
    return len(text)


def test_checks_name_the_broken_constraint():
    bench = _bench()
    check = bench._check
    assert check("length", {"name": "2022, the"}, _chars) == []
    assert check("length", {"name": "0123456789"}, _chars) == ["len(NAME) < 10"]
    assert check("regex", {"date": "20/20"}, _chars) == []
    assert check("regex", {"date": "2023."}, _chars) == ["REGEX(DATE)"]
    assert check("set", {"thing": ["Sunscreen"] * 4}, _chars) == []
    assert check("set", {"thing": ["Towel"] * 4}, _chars) == ["THING in set"]
    assert check("stops", {"answer": "Paris", "confidence": "high"}, _chars) == []
    assert check("stops", {"answer": "Paris.", "confidence": "maybe"}, _chars) == [
        "STOPS_BEFORE(ANSWER, '.' / '\\n')", "C in [low, high]"]
    assert check("number", {"n": 100}, _chars) == [] and check("number", {"n": "1000"}, _chars) == []
    assert check("number", {"n": "ten"}, _chars) == ["INT(N)"]
    # STOPS_AT keeps the stop phrase, once, at the end
    assert check("list-multi", {"thing": ["towel\n"] * 5}, _chars) == []
    broken = check("list-multi", {"thing": ["a\nb"] + ["x"] * 4}, _chars)
    assert broken == ["STOPS_AT(THING, '\\n'): 'a\\nb'"]
    assert check("sketch", {"reasoning": "It is.", "answer": "C"}, _chars) == ["ANSWER in [A, B]"]


def test_values_are_mapped_to_pflow_holes():
    bench = _bench()
    assert bench.pflow_holes("length", "Bob") == {"name": "Bob"}
    assert bench.pflow_holes("stops", {"answer": "x", "confidence": "low"}) == {"answer": "x", "confidence": "low"}
    assert bench.lmql_holes("stops", {"ANSWER": "x", "C": "low"}) == {"answer": "x", "confidence": "low"}
    assert bench.lmql_holes("set", {"THING": "Sunscreen", "THINGS": ["Sunscreen"]}) == {"thing": ["Sunscreen"]}
    assert set(bench.ALL) == set(bench.HOLES) == set(bench.FIRST_HOLE)


def test_an_interpreter_without_lmql_is_an_error_per_query(tmp_path):
    # this interpreter has no lmql: the runner fails at once, and every query says why
    out = _bench().run_lmql(sys.executable, None, str(tmp_path / "none.gguf"), ["length", "regex"],
                            n_ctx=512, timeout=60)
    assert set(out["results"]) == {"length", "regex"}
    for entry in out["results"].values():
        assert "lmql" in entry["error"] or "No module named" in entry["error"]
