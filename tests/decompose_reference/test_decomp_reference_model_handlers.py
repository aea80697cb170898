"""`protocol decomp` with DecomP's model handlers written as completion prompts: CommaQA-E
(question-answering prompts given the example's passage) and letter_cat with every
handler a model call (split, arr_position and merge prompts, str_position a nested
decomposer).

The expected texts here (commaqa_e_fine_p1/, commaqa_e_coarse_p2/, letter_cat_llm_p1/)
were written by DecomP's own inference code (bench/decomp_reference.py --oracle
--dump-prompts): the decomposers' prompts and the handlers' prompts, in the order the
reference sent them.  pflow must send the same texts, byte for byte, from the bench's
programs and from the examples (examples/decomp/reference/commaqa_e.pflow,
letter_cat_llm.pflow).  All offline: a scripted model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from corpus_paths import REPO, load_bench

import promptflow_dsl as pf
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.context import RunContext
from promptflow_dsl.runtime.trace import TraceRecorder

EXPECTED = Path(__file__).resolve().parent
REFERENCE = REPO / "examples" / "decomp" / "reference"
EXAMPLE = REFERENCE / "commaqa_e.pflow"


def _bench() -> Any:
    return load_bench("decomp_reference")


def _expected(name: str) -> list[str]:
    files = sorted(EXPECTED.joinpath(name).glob("prompt_*.txt"))
    assert len(files) == 6
    return [f.read_text(encoding="utf-8") for f in files]


@pytest.mark.parametrize("name", ["commaqa_e_fine_p1", "commaqa_e_coarse_p2"])
def test_decomposer_and_handler_prompts_are_the_reference_text(name: str):
    bench = _bench()
    task, rel = bench.TASKS[name]
    exs = bench.examples(task, 2, bench.DATA / rel)
    backend = bench.Recording(bench.OracleBackend(bench.CommaQAOracle(exs)))
    preds = asyncio.run(bench.pflow_predictions(task, bench.DATA / rel, exs, backend))
    assert preds == [e["gold"] for e in exs]
    assert backend.prompts[:6] == _expected(name)
    # the handlers' prompts end with the question; the decomposer's with "QS:"
    assert [p.endswith("\nA:") for p in backend.prompts[:6]] == [False, True, False, True,
                                                                 True, False]


@pytest.mark.parametrize("name", [f"commaqa_e_{k}_{p}" for k in ("fine", "coarse")
                                  for p in ("p1", "p2", "p3")])
def test_gold_runs_give_the_gold_answers(name: str):
    bench = _bench()
    task, rel = bench.TASKS[name]
    exs = bench.examples(task, 100, bench.DATA / rel)
    assert len(exs) == 6
    assert len({e["context"][0] for e in exs}) == 6  # every example has its own passage
    backend = bench.Recording(bench.OracleBackend(bench.CommaQAOracle(exs)))
    preds = asyncio.run(bench.pflow_predictions(task, bench.DATA / rel, exs, backend))
    assert preds == [e["gold"] for e in exs]
    assert len(backend.prompts) == 49


def _run(path: Path, handler: str, inputs: dict[str, Any], backend: Any) -> Any:
    prog = pf.load(path)
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, sequential=True)
    config.backends["default"] = backend

    async def run() -> Any:
        ctx = RunContext(prog, config, TraceRecorder(handler, "test"), None)
        try:
            return await ctx.call(prog.handler(handler).key, inputs, call_span=None,
                                  caller=None)
        finally:
            await ctx.aclose()

    return asyncio.run(run())


def test_the_example_sends_the_reference_text():
    bench = _bench()
    exs = bench.examples("commaqa_e", 1, bench.DATA / bench.TASKS["commaqa_e_fine_p1"][1])
    backend = bench.Recording(bench.OracleBackend(bench.CommaQAOracle(exs)))
    inputs = {"question": exs[0]["question"], "context": exs[0]["context"]}
    assert _run(EXAMPLE, "commaqa", inputs, backend) == exs[0]["gold"]
    assert backend.prompts[:6] == _expected("commaqa_e_fine_p1")


def test_letter_cat_with_model_handlers_sends_the_reference_text():
    bench = _bench()
    task, rel = bench.TASKS["letter_cat_llm_p1"]
    exs = bench.examples(task, 2)
    backend = bench.Recording(bench.OracleBackend())
    preds = asyncio.run(bench.pflow_predictions(task, bench.DATA / rel, exs, backend))
    assert preds == [e["gold"] for e in exs]
    assert len(backend.prompts) == 42  # per question: 4 + split + 3 x (3 + 2) + merge
    assert backend.prompts[:6] == _expected("letter_cat_llm_p1")
    # the example, with the same files
    example = bench.Recording(bench.OracleBackend())
    assert _run(REFERENCE / "letter_cat_llm.pflow", "letter_cat",
                {"question": exs[0]["question"]}, example) == exs[0]["gold"]
    assert example.prompts[:6] == _expected("letter_cat_llm_p1")


def test_the_example_files_are_the_authors():
    ours = REFERENCE / "prompts"
    theirs = REPO / "bench" / "data" / "decomp" / "prompts"
    for f in ("decomp_fine.txt", "aw_qa.txt", "pos_qa.txt", "simp_qa.txt"):
        assert (ours / "commaqa_e" / f).read_bytes() == \
            (theirs / "commaqa_e" / "commaqa_e_p1" / f).read_bytes(), f
    for f in ("split.txt", "arr_position.txt", "merge.txt", "str_position.txt"):
        assert (ours / "task_primitives" / f).read_bytes() == \
            (theirs / "task_primitives" / f).read_bytes(), f
    assert (ours / "letter_cat_p1.txt").read_bytes() == \
        (theirs / "letter_cat" / "letter_cat_p1.txt").read_bytes()
