"""`protocol decomp`: DecomP's observable behaviour (the prompt text, the line patterns,
the operators and sub-ops, max_steps, #C and context) and `search beam(n)`, the
best-first search over decompositions.  All offline: scripted models.

The expected prompts in tests/decompose_reference/ were written by DecomP's own
inference code (bench/decomp_reference.py --oracle --dump-prompts) for the first two
examples of each task; here pflow renders them itself and must match byte for byte."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from corpus_paths import REPO, load_bench

import promptflow_dsl as pf
from promptflow_dsl.kinds.decompose.reference import (
    RefError,
    assignments,
    build_prompt,
    combine,
    dumps,
    filter_questions,
    is_true,
    known_op,
    parse,
    project_questions,
    select_question,
    sub_ops,
)
from promptflow_dsl.models.base import Capabilities, Reply, Scored, Usage
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.context import RunContext
from promptflow_dsl.runtime.errors import RunError
from promptflow_dsl.runtime.trace import TraceRecorder
from promptflow_dsl.testing.harness import Harness

EXPECTED = REPO / "tests" / "decompose_reference"


def _bench() -> Any:
    return load_bench("decomp_reference")


# ------------------------------------------------------------------ the prompt text


@pytest.mark.parametrize("name", ["letter_cat_p1", "letter_cat_p2", "letter_cat_p3", "reverse"])
def test_prompts_are_the_reference_text(name: str):
    bench = _bench()
    task, rel = bench.TASKS[name]
    backend = bench.Recording(bench.OracleBackend())
    preds = asyncio.run(bench.pflow_predictions(task, bench.DATA / rel,
                                                bench.examples(task, 2), backend))
    assert [p for p in preds if str(p).startswith("<error")] == []
    files = sorted(EXPECTED.joinpath(name).glob("prompt_*.txt"))
    assert len(files) == 6
    for i, f in enumerate(files):
        assert backend.prompts[i] == f.read_text(encoding="utf-8"), f"{name} prompt {i}"


def test_build_prompt_keeps_the_file_raw_and_escapes_non_ascii():
    text = build_prompt("QC: a\nQS: [EOQ]\n", "Q?", [("[x] y", dumps(["é"]))])
    assert text == 'QC: a\nQS: [EOQ]\n\n\nQC: Q?\nQS: [x] y\nA: ["\\u00e9"]\nQS:'
    assert build_prompt("", "Q?", []) == "QC: Q?\nQS:"


# ------------------------------------------------------------------ lines and ops


def test_line_patterns():
    assert parse("[split] What?").op == "select"
    line = parse("(project_values_flat) [f] Go #1")
    assert (line.op, line.handler, line.question) == ("project_values_flat", "f", "Go #1")
    assert parse("(filter(#2)) [f] Is #1 in #2?").op == "filter(#2)"
    with pytest.raises(RefError, match="names no handler"):
        parse("(select) 1")
    with pytest.raises(RefError):
        parse("[split]")  # the reference needs a space and a question after ]


def test_select_one_digit_refs_and_json_substitution():
    a = assignments([dumps("Ada"), dumps(["x", "é"])], None)
    assert select_question("Who is #1 and #2?", a) == 'Who is "Ada" and ["x", "\\u00e9"]?'
    # #12 is #1 followed by 2, as in the reference
    assert select_question("#12", a) == '"Ada"2'
    with pytest.raises(RefError, match="#3 names no answer"):
        select_question("#3", a)


def test_project_a_string_answer_is_a_one_item_list():
    a = assignments([dumps("Ada")], None)
    items, qs = project_questions("project_values", 'Letter of "#1"?', a)
    assert items == ["Ada"] and qs == ['Letter of "Ada"?']
    assert combine("project_values", items, ["a"]) == ["a"]
    assert combine("project", items, ["a"]) == [["Ada", "a"]]


def test_project_reads_items_the_reference_way():
    a = assignments([dumps([1, 2.5]), dumps([["k", "v"]]), dumps([{"a": 1}])], None)
    assert project_questions("project", "n #1", a)[1] == ["n 1", "n 2.5"]
    assert project_questions("projectValues", "v #2", a)[1] == ['v "v"']
    assert project_questions("projectKeys", "k #2", a)[1] == ['k "k"']
    with pytest.raises(RefError, match="string items"):
        project_questions("project", "x #3", a)
    with pytest.raises(RefError, match="one #k only"):
        project_questions("project", "#1 and #2", a)
    assert combine("projectValues", [["k", "v"]], ["w"]) == [["k", "w"]]
    assert combine("projectKeys", [["k", "v"]], ["j"]) == [["j", "v"]]
    assert combine("projectValues_keys", [["k", "v"]], ["w"]) == ["k"]


def test_project_over_the_context():
    a = assignments([], ["para one", "para two"])
    assert a["#C"] == ["PARA_0", "PARA_1"]
    assert project_questions("project_values", "#C who?", a)[1] == ["PARA_0 who?",
                                                                    "PARA_1 who?"]


def test_flat_is_recursive_and_unique_keeps_the_first():
    assert sub_ops("select_flat", [[1, [2, [3]]], 4]) == [1, 2, 3, 4]
    assert sub_ops("select_flat_unique", [["a", ["b"]], ["a"]]) == ["a", "b"]
    assert combine("project_values_flat_unique", ["x", "y"],
                   [["a", "b"], ["b", ["c"]]]) == ["a", "b", "c"]
    assert combine("select_flat", [], [[["x"], "y"]]) == ["x", "y"]
    with pytest.raises(RefError, match="_unique needs a list"):
        sub_ops("select_unique", "ab")
    with pytest.raises(RefError, match="unknown sub-op _sorted"):
        sub_ops("select_sorted", [1])


def test_filter_keeps_exactly_yes_true_1():
    assert [is_true(x) for x in ("yes", "YES", "True", "1", True)] == [True] * 5
    assert [is_true(x) for x in ("yes.", "Yes, it is", "y", "no", False)] == [False] * 5
    with pytest.raises(RefError):
        is_true(1)
    assert combine("filter", ["a", "b", "c"], ["yes", "no", "Yes."]) == ["a"]


def test_filter_with_several_refs_names_its_list():
    a = assignments([dumps(["a", "b"]), dumps("z")], None)
    items, qs = filter_questions("filter(#1)", "Is #1 before #2?", a)
    assert items == ["a", "b"] and qs == ['Is a before "z"?', 'Is b before "z"?']
    with pytest.raises(RefError, match="must name one"):
        filter_questions("filter", "Is #1 before #2?", a)
    with pytest.raises(RefError, match="needs a list"):
        filter_questions("filter", "Is #2 ok?", a)
    with pytest.raises(RefError, match="not implemented"):
        combine("filterValues", [["k", "v"]], ["yes"])


def test_known_ops():
    for op in ("select", "project_values_flat_unique", "projectValues_keys", "filter(#2)",
               "select_flat"):
        assert known_op(op), op
    for op in ("foreach", "project_sorted", "map"):
        assert not known_op(op), op


# ------------------------------------------------------------------ running


TOOLS = '''
import json


def words(question):
    return question.split('"')[1].split()


def first(question):
    return question.strip('"')[0]


def join(question):
    return " ".join(json.loads(question[question.index("["):question.rindex("]") + 1]))


def with_context(question, context):
    return f"{question} <{len(context)} paras: {context[int(question[5])]}>"


def json_text(question):
    return '["a", "b"]'
'''

PROGRAM = '''
model default = "local/smollm2"

tool words(question: str) -> list[str] = python "tools:words"
tool first(question: str) -> str = python "tools:first"
tool join(question: str) -> str = python "tools:join"
tool with_context(question: str, context: list[str] = []) -> str = python "tools:with_context"
tool json_text(question: str) -> str = python "tools:json_text"

decompose ref(question: str, context: list[str] = []) -> any {
  handlers { words: words, first: first, join: join, ctx: with_context, jt: json_text }
  prompt """QC: x
QS: [EOQ]
"""
  protocol decomp
  max_steps 3
}

decompose searched(question: str) -> any {
  handlers { words: words, first: first, join: join }
  prompt "QC: x\\nQS: [EOQ]"
  protocol decomp
  search beam(2)
}

decompose strict(question: str) -> any {
  handlers { words: words }
  prompt "QC: x\\nQS: [EOQ]"
}
'''


@pytest.fixture
def program(tmp_path: Path):
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "p.pflow").write_text(PROGRAM)
    return pf.load(tmp_path / "p.pflow")


def _harness(program, replies: list[str]) -> Harness:
    return Harness(program).mock_model("default", replies)


def test_a_run_with_project_values(program):
    h = _harness(program, ['[words] The words in "Ada King"', '(project_values) [first] #1',
                           "[join] Join #2", "[EOQ]"])
    assert h.run("ref", question="q") == "A K"


def test_max_steps_forces_eoq_and_returns_the_last_answer(program):
    h = _harness(program, ['[words] "a b"', '[words] "c d"', '[words] "e f"'])
    assert h.run("ref", question="q") == ["e", "f"]
    steps = [e for e in h.trace.steps[0].events if e.get("forced")]
    assert len(steps) == 1


def test_context_reaches_handlers_with_a_context_parameter(program):
    h = _harness(program, ["(project_values) [ctx] #C", "[EOQ]"])
    out = h.run("ref", question="q", context=["one", "two"])
    assert out == ["PARA_0 <2 paras: one>", "PARA_1 <2 paras: two>"]


def test_a_json_text_answer_is_decoded(program):
    h = _harness(program, ["[jt] go", "[EOQ]"])
    assert h.run("ref", question="q") == ["a", "b"]


def test_a_greedy_failure_fails_the_call_with_its_reason(program):
    h = _harness(program, ["[nope] go"])
    with pytest.raises(RunError, match="unknown handler 'nope'"):
        h.run("ref", question="q")
    h = _harness(program, ["(project) [first] #1"])
    with pytest.raises(RunError, match=r"\(project\): #1 names no answer yet"):
        h.run("ref", question="q")


def test_search_tries_the_next_candidate_when_one_fails(program):
    # beam(2): a greedy and a sampled line per step; without log-probabilities the greedy
    # line ranks first; its unknown handler drops it, and the sampled line is run
    h = _harness(program, ["[nope] go", '[words] "a b"', "[EOQ]", "[EOQ]"])
    assert h.run("searched", question="q") == ["a", "b"]
    model_calls = h.model_calls("default")
    assert [c.params.temperature for c in model_calls] == [0.0, 1.0, 0.0, 1.0]


class _Scoring:
    """Greedy/sampled replies by seed and log-probabilities by text."""

    model_id = "scoring"
    capabilities = Capabilities(chat=False, completion=True, streaming=False, logprobs=True)

    def __init__(self, steps: list[tuple[str, str]], logprobs: dict[str, float]) -> None:
        self.steps = steps
        self.logprobs = logprobs
        self.calls = 0

    async def complete(self, prefix: str, params: Any) -> Reply:
        done = prefix.count("\nQS:") - 2  # the few-shot line and the one asked for
        greedy, sampled = self.steps[done]
        self.calls += 1
        return Reply(" " + (sampled if params.seed else greedy), self.model_id, Usage(), "stop")

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        return [Scored(c, self.logprobs[c.strip()] * 2, 2) for c in continuations]

    async def aclose(self) -> None:
        return None


def _run_with(program, backend: Any, handler: str, question: str) -> Any:
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, sequential=True)
    config.backends["default"] = backend
    ctx = RunContext(program, config, TraceRecorder("t", "test"), None)

    async def go() -> Any:
        try:
            return await ctx.call(program.handler(handler).key, {"question": question},
                                  call_span=None, caller=None)
        finally:
            await ctx.aclose()

    return asyncio.run(go())


def test_search_prefers_the_line_with_the_best_mean_log_probability(program):
    steps = [('[words] "a b"', '[words] "c d e"'), ("[EOQ]", "[EOQ]")]
    # the sampled line is likelier than the greedy one: it is run first, and its
    # decomposition ends first
    backend = _Scoring(steps, {'[words] "a b"': -2.0, '[words] "c d e"': -0.5, "[EOQ]": -0.1})
    assert _run_with(program, backend, "searched", "q") == ["c", "d", "e"]
    backend = _Scoring(steps, {'[words] "a b"': -0.2, '[words] "c d e"': -0.5, "[EOQ]": -0.1})
    assert _run_with(program, backend, "searched", "q") == ["a", "b"]


# ------------------------------------------------------------------ checking


def _check_errors(tmp_path: Path, body: str) -> str:
    (tmp_path / "x.py").write_text("def y(question):\n    return question\n")
    (tmp_path / "c.pflow").write_text('model default = "local/smollm2"\n'
                                      'tool t(question: str) -> str = python "x:y"\n' + body)
    with pytest.raises(pf.CompileError) as info:
        pf.load(tmp_path / "c.pflow")
    return " | ".join(d.message for d in info.value.diagnostics)


@pytest.mark.parametrize("clauses, message", [
    ("protocol paper", "unknown protocol 'paper'"),
    ("search beam(2)", "`search beam(N)` needs `protocol decomp`"),
    ("protocol decomp\n  search beam(0)", "beam width must be from 1 to 16"),
    ("protocol decomp\n  search wide", "unknown search 'wide'"),
    ('protocol "decomp"', "expected a word"),
])
def test_checker_errors(tmp_path: Path, clauses: str, message: str):
    body = ('decompose d(question: str) -> str {\n  handlers { t: t }\n  prompt "QC: a\\nQS: [EOQ]"'
            f"\n  {clauses}\n}}\n")
    assert message in _check_errors(tmp_path, body)


def test_checker_warns_about_ops_the_reference_cannot_run(tmp_path: Path):
    (tmp_path / "x.py").write_text("def y(question):\n    return question\n")
    (tmp_path / "w.pflow").write_text(
        'model default = "local/smollm2"\ntool t(question: str) -> str = python "x:y"\n'
        'decompose d(question: str) -> str {\n  handlers { t: t }\n'
        '  prompt "QC: a\\nQS: (foreach) [t] #1\\nQS: (project_values_flat) [t] #1"\n'
        "  protocol decomp\n}\n")
    checked = pf.load(tmp_path / "w.pflow")
    text = " ".join(str(d.message) for d in checked.diagnostics)
    assert "(foreach)" in text and "project_values_flat" not in text.split("ops:")[0]


def test_reference_examples_pass_their_tests():
    from promptflow_dsl import cli

    for name in ("letter_cat.pflow", "reverse.pflow"):
        path = REPO / "examples" / "decomp" / "reference" / name
        assert cli.main(["test", str(path)]) == 0, name


def test_the_expected_prompts_are_the_authors_files():
    prompt = (REPO / "bench" / "data" / "decomp" / "prompts" / "letter_cat" /
              "letter_cat_p1.txt").read_text(encoding="utf-8")
    first = (EXPECTED / "letter_cat_p1" / "prompt_0.txt").read_text(encoding="utf-8")
    assert first.startswith(prompt + "\n\nQC: ")
    assert json.loads(dumps("é")) == "é"
