"""Tests for promptflow_dsl.plan.render: Mermaid, DOT and JSON views of plans and call graphs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import pytest

import promptflow_dsl as pf
from promptflow_dsl.plan import Plan, PlannedStep
from promptflow_dsl.plan.render import (
    dot_id,
    mermaid_ids,
    mermaid_label,
    render,
    render_call_graph,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DIRS = [REPO.parent / "shared" / "spec" / "examples", REPO / "examples"]
EXAMPLES = sorted(p for d in EXAMPLE_DIRS if d.is_dir() for p in d.glob("*.pflow"))

TOOLS = '''
def up(text: str) -> str:
    return text.upper()

def kth(word: str, k: int) -> str:
    return word[k - 1]
'''

PROGRAM = '''
model default = "local/smollm2"
tool up(text: str) -> str = python "tools:up"
tool kth(word: str, k: int) -> str = python "tools:kth"
prompt shout(text: str) -> str = "Repeat in capitals: {{ text }}"
hook calc {
  when r"(?P<expr>\\d+)=$"
  run up(text=expr)
  action insert
}
prompt talk(topic: str) -> str {
  user "Talk about {{ topic }}"
  hooks [calc]
}
decompose solve(question: str) -> str {
  handlers { up: up, again: solve }
  prompt """QS: [EOQ]"""
}
flow letters(words: list[str], k: int) -> str {
  picked = [kth(word=w, k=k) for w in words]
  joined = join(picked, " ")
  loud = shout(text=joined) if k > 1 else joined
  answer = solve(question=loud)
  return talk(topic=answer)
}
'''


@pytest.fixture
def program(tmp_path: Path) -> pf.CheckedProgram:
    (tmp_path / "tools.py").write_text(TOOLS)
    return pf.loads(PROGRAM, name="main.pflow", base_dir=tmp_path)


def node_lines(text: str) -> dict[str, str]:
    """Mermaid node definitions: id -> the rest of the line."""
    out = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"\s+([A-Za-z][A-Za-z0-9_]*)([(\[{].*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


# --------------------------------------------------------------------------- mermaid


def test_mermaid_shapes_and_edges(program: pf.CheckedProgram) -> None:
    text = render(program.plan("letters"), "mermaid")
    assert text.startswith("flowchart TD\n")
    nodes = node_lines(text)
    assert nodes["in_words"] == '(["words: list[str]"])'
    assert nodes["picked"] == '[["picked = map kth over words<br/>for each w: kth(word=w, k=k)"]]'
    assert nodes["joined"] == '[/"joined = join(picked, #quot; #quot;)"/]'
    assert nodes["loud"] == '{"if k #gt; 1"}'
    assert nodes["loud_then"] == '["shout(text=joined)"]'
    assert nodes["return"] == '(("return talk(topic=answer)"))'
    assert nodes["handler_solve"] == '("decompose solve"):::handler'
    lines = {line.strip() for line in text.splitlines()}
    assert {"in_words --> picked", "loud -->|then| loud_then", "loud_then --> answer",
            "picked -.-> handler_kth", "handler_solve -.->|may call| handler_solve",
            "handler_solve -.->|may call| handler_up", "handler_talk -.->|hook| handler_up",
            "return_1 -.-> handler_talk"} <= lines
    assert "classDef handler" in text


def test_mermaid_labels_and_ids_are_escaped() -> None:
    assert mermaid_label('say "hi" <b> & #1 `x`') == \
        "say #quot;hi#quot; #lt;b#gt; #38; #35;1 #96;x#96;"
    assert mermaid_label("one\ntwo") == "one<br/>two"
    ids = mermaid_ids(["in:x", "in_x", "end", "x#1", "x?then", "1st", "handler:t.split", "é"])
    assert ids == {"in:x": "in_x", "in_x": "in_x_2", "end": "n_end", "x#1": "x_1",
                   "x?then": "x_then", "1st": "n_1st", "handler:t.split": "handler_t_split",
                   "é": "n__"}
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", i) for i in ids.values())


# --------------------------------------------------------------------------- dot


def test_dot_shapes_and_edge_styles(program: pf.CheckedProgram) -> None:
    text = render(program.plan("letters"), "dot")
    assert text.startswith("digraph plan {") and text.rstrip().endswith("}")
    assert '"picked" [label="picked = map kth over words\\nfor each w: kth(word=w, k=k)", ' \
           'shape=box, peripheries=2];' in text
    assert '"loud" [label="if k > 1", shape=diamond];' in text
    assert '"return" [label="return talk(topic=answer)", shape=circle];' in text
    assert '"loud" -> "loud?then" [label="then"];' in text
    assert '"handler:solve" -> "handler:solve" [style=dashed, label="may call"];' in text
    assert '"handler:talk" -> "handler:up" [style=dashed, label="hook"];' in text
    assert '"picked" -> "handler:kth" [style=dotted];' in text
    assert '"in:words" -> "picked";' in text


def test_dot_escapes_quotes_backslashes_and_newlines() -> None:
    assert dot_id('a "b" \\c\nd <e>') == '"a \\"b\\" \\\\c\\nd <e>"'
    step = PlannedStep('odd "id"\\', "value", 'x = "<y>"\nz')
    plan = Plan.from_steps("m::f", [step], [])
    dot = render(plan, "dot")
    assert '"odd \\"id\\"\\\\" [label="x = \\"<y>\\"\\nz", shape=parallelogram];' in dot
    mermaid = render(plan, "mermaid")
    assert 'odd__id__[/"x = #quot;#lt;y#gt;#quot;<br/>z"/]' in mermaid


# --------------------------------------------------------------------------- json and errors


def test_json_is_the_plans_node_link_data(program: pf.CheckedProgram) -> None:
    plan = program.plan("letters")
    assert json.loads(render(plan, "json")) == json.loads(json.dumps(plan.to_json()))


def test_to_json_is_readable_node_link_data(program: pf.CheckedProgram) -> None:
    plan = program.plan("letters")
    data = json.loads(json.dumps(plan.to_json()))
    assert data["directed"] is True and data["graph"] == {"entry": plan.entry}
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["picked"] == {"id": "picked", "kind": "map", "label": "picked = map kth over words",
                               "span": "main.pflow:20:3", "handler": program.handler("kth").key,
                               "handler_name": "kth", "binds": "picked", "guard": None}
    assert nodes["loud?then"]["guard"] == ["loud", "then"]
    assert nodes["handler:solve"]["span"] == "main.pflow:15:1"
    links = {(e["source"], e["target"], e["kind"]) for e in data["links"]}
    assert {("loud", "loud?then", "data"), ("picked", "handler:kth", "call"),
            ("handler:solve", "handler:solve", "may_call")} <= links
    try:
        g = nx.node_link_graph(data, edges="links")
    except TypeError:  # networkx < 3.4
        g = nx.node_link_graph(data)
    assert set(g.nodes) == set(plan.steps) and g.number_of_edges() == plan.graph.number_of_edges()


def test_unknown_format_is_a_value_error(program: pf.CheckedProgram) -> None:
    with pytest.raises(ValueError, match="svg"):
        render(program.plan("letters"), "svg")
    with pytest.raises(ValueError, match="svg"):
        render_call_graph(program, "svg")


# --------------------------------------------------------------------------- call graph


def test_call_graph_of_the_module(program: pf.CheckedProgram) -> None:
    text = render_call_graph(program, "mermaid")
    nodes = node_lines(text)
    assert nodes == {
        "handler_up": '("tool up"):::handler', "handler_kth": '("tool kth"):::handler',
        "handler_shout": '("prompt shout"):::handler', "handler_talk": '("prompt talk"):::handler',
        "handler_solve": '("decompose solve"):::handler',
        "handler_letters": '("flow letters"):::handler',
    }
    lines = {line.strip() for line in text.splitlines()}
    assert {"handler_letters -.-> handler_kth", "handler_letters -.-> handler_shout",
            "handler_letters -.-> handler_solve", "handler_letters -.-> handler_talk",
            "handler_solve -.->|may call| handler_up",
            "handler_solve -.->|may call| handler_solve",
            "handler_talk -.->|hook| handler_up"} <= lines
    data = json.loads(render_call_graph(program, "json"))
    assert {n["label"] for n in data["nodes"]} == {"tool up", "tool kth", "prompt shout",
                                                  "prompt talk", "decompose solve",
                                                  "flow letters"}
    dot = render_call_graph(program, "dot")
    assert '"handler:letters" -> "handler:kth" [style=dotted];' in dot


def test_call_graph_names_imported_handlers(tmp_path: Path) -> None:
    prog = pf.loads('import std.text as t\nflow f(q: str) -> list[str] {\n'
                    '  return t.split_words(text=q)\n}\n', base_dir=tmp_path)
    text = render_call_graph(prog, "mermaid")
    assert 'handler_t_split_words("tool t.split_words"):::handler' in text
    assert "handler_f -.-> handler_t_split_words" in text


# --------------------------------------------------------------------------- corpus


@pytest.mark.skipif(not EXAMPLES, reason="no example programs found")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_renders(path: Path) -> None:
    program = pf.load(path)
    for fmt in ("mermaid", "dot", "json"):
        assert render_call_graph(program, fmt)
    for name in program.handlers:
        plan = program.plan(name)
        data = json.loads(render(plan, "json"))
        assert {n["id"] for n in data["nodes"]} == set(plan.steps)
        mermaid = render(plan, "mermaid")
        defined = node_lines(mermaid)
        ids = mermaid_ids(plan)
        assert set(defined) == set(ids.values())
        dot = render(plan, "dot")
        for sid, step in plan.steps.items():
            assert f"{dot_id(sid)} [label=" in dot
            assert mermaid_label(step.label) in defined[ids[sid]]
