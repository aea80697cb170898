"""The run side of datasets: many rows on one shared run context (RowRunner), each row
with its own trace, and the dataset bridge (run_handler_dataset)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.datasets import DatasetError, RunFolderError
from promptflow_dsl.datasets.programs import (
    DataOptions,
    check_handler_columns,
    model_ids,
    program_digest,
    run_handler_dataset,
)
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.errors import InputError
from promptflow_dsl.runtime.rows import RowRunner, bind_row
from promptflow_dsl.runtime.trace import TraceRecorder, load_trace

PROGRAM = '''
model default = "echo"
prompt say(text: str, n: int = 1) -> str = "say {{ text }} x{{ n }}"
tool boom(text: str) -> str = python "tools:boom"
flow main(text: str, n: int) -> {s: str, b: str} {
  s = say(text=text, n=n)
  b = boom(text=text)
  return {s: s, b: b}
}
'''

TOOLS = '''
def boom(text):
    if "bad" in text:
        raise ValueError(f"bad input {text!r}")
    return text.upper()
'''

HTTP = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-x", concurrency: {limit} }}
prompt say(text: str) -> str = "say {{{{ text }}}}"
flow chain(text: str) -> str {{
  a = say(text=text)
  return say(text=a)
}}
'''


@pytest.fixture
def program(tmp_path: Path) -> pf.Program:
    (tmp_path / "p.pflow").write_text(PROGRAM)
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "pflow.toml").write_text("")
    return pf.load(tmp_path / "p.pflow")


def config(tmp_path: Path, **kw) -> RunConfig:
    kw.setdefault("cache", CacheMode.OFF)
    return RunConfig(trace_dir=tmp_path / "traces", cache_dir=tmp_path / "cache", **kw)


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def _calls(program, cfg, rows):
    async with RowRunner(program, cfg) as runner:
        return [await runner.call("main", r) for r in rows]


def test_each_row_has_its_own_trace_written_to_disk(program, tmp_path: Path):
    rows = [{"text": "hello", "n": 2}, {"text": "world", "n": 3}]
    results = asyncio.run(_calls(program, config(tmp_path), rows))
    assert [r.value for r in results] == [{"s": "say hello x2", "b": "HELLO"},
                                          {"s": "say world x3", "b": "WORLD"}]
    ids = {r.trace_id for r in results}
    assert len(ids) == 2
    for r, row in zip(results, rows, strict=True):
        assert r.trace_path == tmp_path / "traces" / f"{r.trace_id}.json"
        trace = load_trace(r.trace_id, tmp_path / "traces")
        assert trace.entry == "main" and trace.inputs == row and trace.status == "ok"
        assert sorted(s.handler for s in trace.steps) == ["boom", "main", "say"]
        assert r.totals.calls == 1 and r.tokens == trace.totals.prompt_tokens + \
            trace.totals.completion_tokens > 0
        assert r.usage()["calls"] == 1


def test_a_failed_row_is_located_and_the_others_go_on(program, tmp_path: Path):
    rows = [{"text": "ok", "n": 1}, {"text": "bad", "n": 1}, {"text": "fine", "n": 1}]
    results = asyncio.run(_calls(program, config(tmp_path), rows))
    assert [r.ok for r in results] == [True, False, True]
    text = results[1].error_text
    first, second = text.splitlines()[:2]
    assert first.endswith("p.pflow:4:6: tool 'boom' raised ValueError: bad input 'bad'")
    assert second.endswith("p.pflow:7:7: note: in this call of 'boom'")
    assert "Traceback" in text
    assert load_trace(results[1].trace_id, tmp_path / "traces").status == "failed"


def test_rows_bind_by_name_and_convert_text_cells(program):
    h = program.handler("main")
    assert bind_row(h, "main", {"text": "a", "n": 3, "extra": 1}) == {"text": "a", "n": 3}
    with pytest.raises(InputError, match="input 'n' must be int: .*got str"):
        bind_row(h, "main", {"text": "a", "n": "3"})  # a JSON value must fit as it is
    with pytest.raises(InputError, match="no column 'n' for parameter 'n'"):
        bind_row(h, "main", {"text": "a"})
    say = program.handler("say")
    assert bind_row(say, "say", {"text": "a"}) == {"text": "a"}  # n has a default
    # CSV cells: text for text parameters, JSON for the others, empty cells
    assert bind_row(h, "main", {"text": "3", "n": " 3 "}, text_cells=True) == {"text": "3",
                                                                                "n": 3}
    with pytest.raises(InputError, match="input 'n': expected int written as JSON, got the "
                                         "text 'three'"):
        bind_row(h, "main", {"text": "a", "n": "three"}, text_cells=True)
    with pytest.raises(InputError, match="input 'n': the cell is empty, and int needs a value"):
        bind_row(h, "main", {"text": "a", "n": ""}, text_cells=True)
    assert bind_row(h, "main", {"text": "", "n": "1"}, text_cells=True) == {"text": "", "n": 1}
    assert bind_row(say, "say", {"text": "a", "n": ""}, text_cells=True) == {"text": "a"}


def test_a_row_that_does_not_bind_is_a_failed_call_without_a_trace(program, tmp_path: Path):
    [r] = asyncio.run(_calls(program, config(tmp_path), [{"text": "a", "n": [1]}]))
    assert not r.ok and type(r.error).__name__ == "RowInputError"
    assert r.trace_id == "" and r.error_text.startswith("input 'n' must be int")


def test_no_trace_writes_nothing_and_still_counts(program, tmp_path: Path):
    cfg = config(tmp_path, write_trace=False)
    [r] = asyncio.run(_calls(program, cfg, [{"text": "a", "n": 1}]))
    assert r.ok and r.trace_path is None and r.trace_id == "" and r.tokens > 0
    assert not (tmp_path / "traces").exists()


def test_no_trace_recorder_outlives_its_row(program, tmp_path: Path):
    async def go():
        async with RowRunner(program, config(tmp_path)) as runner:
            for i in range(30):
                await runner.call("main", {"text": f"t{i}", "n": 1})
            gc.collect()
            return sum(isinstance(o, TraceRecorder) for o in gc.get_objects())

    assert asyncio.run(go()) == 1  # the shared context's own, never a row's


def test_rows_share_the_global_and_the_per_model_limit(tmp_path: Path, fake_openai):
    fake_openai.set_latency(0.05)
    path = tmp_path / "h.pflow"
    path.write_text(HTTP.format(base=fake_openai.base_url, limit=3))
    program = pf.load(path)

    async def go(cfg):
        async with RowRunner(program, cfg) as runner:
            return await asyncio.gather(*(runner.call("chain", {"text": f"r{i}"})
                                          for i in range(12)))

    results = asyncio.run(go(config(tmp_path, concurrency=64)))
    assert all(r.ok for r in results) and fake_openai.max_in_flight == 3
    assert results[0].value == "say say r0"
    fake_openai.max_in_flight = 0
    path.write_text(HTTP.format(base=fake_openai.base_url, limit=50))
    program = pf.load(path)
    asyncio.run(go(config(tmp_path, concurrency=2)))
    assert fake_openai.max_in_flight == 2


def test_rows_share_the_response_cache(tmp_path: Path, fake_openai):
    path = tmp_path / "h.pflow"
    path.write_text(HTTP.format(base=fake_openai.base_url, limit=8))
    program = pf.load(path)

    async def go():
        async with RowRunner(program, config(tmp_path, cache=CacheMode.DEFAULT)) as runner:
            return await asyncio.gather(*(runner.call("chain", {"text": "same"})
                                          for _ in range(5)))

    results = asyncio.run(go())
    assert fake_openai.count == 2  # two distinct requests, made once for all five rows
    assert sum(r.totals.calls for r in results) == 10
    assert sum(r.totals.cache_hits for r in results) == 8
    assert sum(bool(r.tokens) for r in results) >= 1  # only the calls made spend tokens


def test_run_handler_dataset_writes_one_line_per_row(program, tmp_path: Path):
    data = write_rows(tmp_path / "rows.jsonl", [
        {"id": 1, "text": "hello", "n": 2}, {"id": 2, "text": "bad", "n": 1},
        {"id": 3, "text": "x", "n": "nope"}])
    out = tmp_path / "out.jsonl"
    run = asyncio.run(run_handler_dataset(program, "main", data, out,
                                          config=config(tmp_path)))
    lines = {json.loads(x)["row"]: json.loads(x) for x in out.read_text().splitlines()}
    assert sorted(lines) == [1, 2, 3]
    ok = lines[1]
    assert ok["status"] == "ok" and ok["inputs"] == {"text": "hello", "n": 2}
    assert ok["output"] == {"s": "say hello x2", "b": "HELLO"}
    assert set(ok) >= {"usage", "trace_id", "tokens", "latency"}
    assert ok["usage"]["calls"] == 1 and ok["tokens"] == (ok["usage"]["prompt_tokens"]
                                                          + ok["usage"]["completion_tokens"])
    assert lines[2]["status"] == "failed" and "p.pflow:4:6: tool 'boom' raised" in lines[2]["error"]
    assert lines[3]["error"].startswith(f"{data}:3: input 'n' must be int")
    assert lines[3]["error_type"] == "RowInputError"
    assert run.summary["rows"] == {"total": 3, "ok": 1, "failed": 2, "pending": 0}
    with pytest.raises(RunFolderError, match="exists"):
        asyncio.run(run_handler_dataset(program, "main", data, out, config=config(tmp_path)))


def test_columns_are_checked_before_any_call(program, tmp_path: Path):
    data = write_rows(tmp_path / "rows.jsonl", [{"txt": "a", "n": 1}])
    with pytest.raises(DatasetError, match=r"rows.jsonl:1: no column for parameter 'text'"):
        check_handler_columns(program, "main", data)
    with pytest.raises(DatasetError, match=r"no column 'txet' \(for --map text=txet\); "
                                           r"did you mean 'txt'\?"):
        check_handler_columns(program, "main", data, {"text": "txet"})
    with pytest.raises(DatasetError, match="main has no parameter 'zz'"):
        check_handler_columns(program, "main", data, {"zz": "txt"})
    check_handler_columns(program, "main", data, {"text": "txt"})
    csv = tmp_path / "rows.csv"
    csv.write_text("txt,n\na,1\n")
    with pytest.raises(DatasetError, match=r"rows.csv:1: no column for parameter 'text'"):
        check_handler_columns(program, "main", csv)


def test_csv_cells_are_converted_and_map_renames(program, tmp_path: Path):
    csv = tmp_path / "rows.csv"
    csv.write_text('body,n\n"hi, there",3\nyo,two\n')
    out = tmp_path / "out.jsonl"
    opts = DataOptions(mapping={"text": "body"})
    asyncio.run(run_handler_dataset(program, "main", csv, out, config=config(tmp_path),
                                    options=opts))
    lines = {json.loads(x)["row"]: json.loads(x) for x in out.read_text().splitlines()}
    assert lines[2]["inputs"] == {"text": "hi, there", "n": 3} and lines[2]["status"] == "ok"
    assert lines[3]["status"] == "failed"
    assert lines[3]["error"].endswith("rows.csv:3: input 'n': expected int written as JSON, "
                                      "got the text 'two'")


def test_program_digest_follows_the_sources(tmp_path: Path):
    (tmp_path / "pflow.toml").write_text("")
    p = tmp_path / "a.pflow"
    p.write_text('prompt f(x: str) -> str = "a {{ x }}"\n')
    d1 = program_digest(pf.load(p))
    assert d1 == program_digest(pf.load(p)) and d1.startswith("sha256:")
    p.write_text('prompt f(x: str) -> str = "b {{ x }}"\n')
    assert program_digest(pf.load(p)) != d1


def test_model_ids_apply_overrides(program):
    assert model_ids(program) == {"default": "echo"}
    assert model_ids(program, {"default": "openai/gpt-4o-mini"}) == {
        "default": "openai/gpt-4o-mini"}
