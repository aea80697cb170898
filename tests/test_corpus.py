"""Every .pflow file the project ships or promises (examples/, stdlib/, the spec's
examples) checks without errors, and every handler of it can be planned and
rendered in every graph format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_paths import REPO, corpus_files

import promptflow_dsl as pf


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(REPO.parent)))
def test_corpus_file_checks_and_plans(path: Path):
    program = pf.load(path)
    from promptflow_dsl.plan.render import render, render_call_graph

    for fmt in ("mermaid", "dot", "json"):
        render_call_graph(program, fmt)
    for name in program.handlers:
        plan = program.plan(name)
        assert plan.graph.number_of_nodes() >= 1
        json.loads(render(plan, "json"))
        assert render(plan, "mermaid").startswith("flowchart")
        assert "digraph" in render(plan, "dot")


def test_corpus_is_not_empty():
    files = corpus_files()
    assert any("examples" in str(f) for f in files)
    assert any(f.parent.name == "stdlib" for f in files)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(REPO.parent)))
def test_corpus_test_blocks_pass(path: Path):
    from promptflow_dsl.testing import run_test

    program = pf.load(path)
    for test in program.tests:
        outcome = run_test(program, test)
        assert outcome.status in ("passed", "skipped"), f"{outcome.location}: {outcome.message}"
