"""`protocol decomp` on CommaQA-E, whose sub-task handlers are the model's own
question-answering prompts: completion prompts with the example's passage.

The expected texts here (commaqa_e_fine_p1/, commaqa_e_coarse_p2/) were written by
DecomP's own inference code (bench/decomp_reference.py --oracle --dump-prompts): the
decomposer's prompts and the handlers' prompts, in the order the reference sent them.
pflow must send the same texts, byte for byte, from the bench's program and from
examples/decomp/reference/commaqa_e.pflow.  All offline: a scripted model."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from corpus_paths import REPO

import promptflow_dsl as pf
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.context import RunContext
from promptflow_dsl.runtime.trace import TraceRecorder

EXPECTED = Path(__file__).resolve().parent
EXAMPLE = REPO / "examples" / "decomp" / "reference" / "commaqa_e.pflow"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("decomp_reference",
                                                  REPO / "bench" / "decomp_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["decomp_reference"] = module
    spec.loader.exec_module(module)
    return module


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


def test_the_example_sends_the_reference_text():
    bench = _bench()
    exs = bench.examples("commaqa_e", 1, bench.DATA / bench.TASKS["commaqa_e_fine_p1"][1])
    backend = bench.Recording(bench.OracleBackend(bench.CommaQAOracle(exs)))
    prog = pf.load(EXAMPLE)
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, sequential=True)
    config.backends["default"] = backend

    async def run() -> Any:
        ctx = RunContext(prog, config, TraceRecorder("commaqa_e", "test"), None)
        try:
            return await ctx.call(prog.handler("commaqa").key,
                                  {"question": exs[0]["question"], "context": exs[0]["context"]},
                                  call_span=None, caller=None)
        finally:
            await ctx.aclose()

    assert asyncio.run(run()) == exs[0]["gold"]
    assert backend.prompts[:6] == _expected("commaqa_e_fine_p1")


def test_the_example_files_are_the_authors():
    ours = REPO / "examples" / "decomp" / "reference" / "prompts" / "commaqa_e"
    theirs = REPO / "bench" / "data" / "decomp" / "prompts" / "commaqa_e" / "commaqa_e_p1"
    for f in ("decomp_fine.txt", "aw_qa.txt", "pos_qa.txt", "simp_qa.txt"):
        assert ours.joinpath(f).read_bytes() == theirs.joinpath(f).read_bytes(), f
