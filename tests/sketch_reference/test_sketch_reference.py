"""LMQL's documented queries as sketches (``examples/sketch/lmql_*.pflow``) and the script
that runs them (``bench/sketch_reference.py``): every example checks, and on the
embedded model every value meets the query's constraints."""

from __future__ import annotations

import importlib.util
import re

import pytest
from corpus_paths import REPO, load_bench

import promptflow_dsl as pf


def _bench():
    return load_bench("sketch_reference")


def test_every_query_has_a_checked_example():
    bench = _bench()
    files = sorted(p.name for p in (REPO / "examples" / "sketch").glob("lmql_*.pflow"))
    assert sorted(q[0] for q in bench.QUERIES.values()) == files
    for file, handler, _, query in bench.QUERIES.values():
        program = pf.load(REPO / "examples" / "sketch" / file)
        assert handler in program.handlers
        assert not [d for d in program.diagnostics if not d.is_error]  # no warnings on the local model
        assert query.strip()


def test_unknown_query_is_exit_2(capsys):
    assert _bench().main(["--only", "nope"]) == 2
    assert "unknown query: nope" in capsys.readouterr().err


def _local_available() -> bool:
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from promptflow_dsl.models.local import find_gguf

    path = find_gguf()
    return path is not None and path.is_file()


@pytest.mark.skipif(not _local_available(), reason="llama-cpp-python or the SmolLM2 gguf is missing")
def test_values_meet_the_constraints_on_the_embedded_model():
    out = _bench().run_pflow(["number", "set", "length", "regex", "stops"])
    assert isinstance(out["number"]["value"], int)
    things = out["set"]["value"]["thing"]
    assert len(things) == 4 and set(things) <= {"Volleyball", "Sunscreen", "Bathing Suit"}
    assert 0 < len(out["length"]["value"]) <= 9
    assert re.fullmatch(r"[0-9]{2}/[0-9]{2}", out["regex"]["value"])
    stops = out["stops"]["value"]
    assert stops["answer"] and not set(".\n") & set(stops["answer"])
    assert stops["confidence"] in ("low", "high")
    assert f"So the answer is {stops['answer']}." in out["stops"]["text"]
