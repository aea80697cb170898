"""Hostile replies, inputs, tools, files and servers at run time: every case ends with
exit 0, 1 or 2 and a located message — never exit 70, a traceback, a hang or a leak.

One test (or parametrized group) per class of failure; the fixes are at the boundary
that class crosses (``lang/jsondata.py``, the run context, the model clients, the
cache, the trace, recordings, hooks and ``decompose``), not at the one input.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import zlib
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl import cli
from promptflow_dsl.kinds.prompt import triggers
from promptflow_dsl.lang import jsondata
from promptflow_dsl.runtime import InputError, RunConfig, asking
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.errors import RunError
from promptflow_dsl.testing.harness import Harness

DEEP = "[" * 1000 + "]" * 1000
KEY = "gsk_live_0123456789abcdefXYZ"


def pflow(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (code, err)
    assert "internal error" not in err and "Traceback" not in err
    return code, out, err


@pytest.fixture
def served(tmp_path: Path, fake_openai, monkeypatch):
    """A program whose default model is the fake server; returns its path."""
    monkeypatch.setenv("MY_PROVIDER_K", KEY)  # a name no secret pattern matches
    monkeypatch.chdir(tmp_path)

    def make(body: str = "") -> Path:
        path = tmp_path / "p.pflow"
        path.write_text(f'model default = "openai/fake" {{ api_base: "{fake_openai.base_url}", '
                        f'api_key_env: "MY_PROVIDER_K", num_retries: 1 }}\n'
                        'prompt s(x: str) -> str = "s {{ x }}"\n'
                        'prompt j(x: list[any]) -> list[any] = "j {{ x }}"\n' + body)
        return path

    fake_openai.require_key(KEY)
    return make


def run_args(path: Path, handler: str, *inputs: str, cache: bool = False) -> list[str]:
    argv = ["run", str(path), handler, "--trace-dir", "traces", "--cache-dir", "cache"]
    for i in inputs:
        argv += ["-i", i]
    return argv + ([] if cache else ["--no-cache"])


def traces_text(tmp_path: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "traces").glob("*.json"))


# ------------------------------------------------------------------ 1. nesting, text, numbers


def test_deeply_nested_input_is_a_usage_error(served, capsys):
    code, _, err = pflow(run_args(served(), "j", "x=" + DEEP), capsys)
    assert code == 2 and "input 'x': the JSON is nested deeper than 200 levels" in err


def test_an_input_file_that_is_not_utf8_is_a_usage_error(served, capsys, tmp_path):
    (tmp_path / "bad.bin").write_bytes(b"\xff\xfe\x80 not text")
    code, _, err = pflow(run_args(served(), "s", "x=@bad.bin"), capsys)
    assert code == 2 and "--input x: bad.bin is not UTF-8 text (byte 0: invalid start byte)" in err


def test_deeply_nested_python_input_is_an_input_error(served):
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(InputError, match="nested deeper than 200 levels"):
        pf.load(served()).run("j", config=RunConfig(cache=CacheMode.OFF, write_trace=False),
                              x=value)


def test_deeply_nested_reply_is_a_validation_error(served, fake_openai, capsys):
    fake_openai.set_replies([DEEP, "[" * 300 + "]" * 300, "[" + "9" * 5000 + "]"])
    code, _, err = pflow(run_args(served(), "j", "x=[1]"), capsys)
    assert code == 1 and "p.pflow:3:" in err and "after 3 attempts" in err
    sent = [b["messages"][-1]["content"] for b in fake_openai.bodies[1:]]
    assert "nested deeper than 200 levels" in sent[0] and "nested deeper than 200" in sent[1]


def test_parse_json_of_deep_text_is_a_located_error():
    program = pf.loads('flow f(t: str) -> any { return parse_json(t) }\n')
    with pytest.raises(RunError, match="nested deeper than 200 levels") as info:
        program.run("f", config=RunConfig(cache=CacheMode.OFF, write_trace=False), t=DEEP)
    assert info.value.span is not None


def test_lone_surrogates_are_replaced_at_the_boundary(served, fake_openai, capsys, tmp_path):
    fake_openai.set_replies(['["\\ud800 reply"]'])
    code, out, _ = pflow(run_args(served(), "j", "x=[1]"), capsys)
    assert code == 0 and json.loads(out) == ["\ufffd reply"]
    code, out, _ = pflow(run_args(served(), "s", "x=a\udc80b"), capsys)  # argv surrogateescape
    assert code == 0 and out.strip() == "s a\ufffdb"
    assert len(list((tmp_path / "traces").glob("*.json"))) == 2  # both traces written


TOOLS = '''
import datetime

def make(kind):
    if kind == "bytes":
        return b"abc"
    if kind == "set":
        return {1, 2}
    if kind == "datetime":
        return datetime.datetime(2025, 1, 1)
    if kind == "generator":
        return (i for i in range(3))
    if kind == "deep":
        v = []
        for _ in range(5000):
            v = [v]
        return v
    if kind == "cycle":
        v = []
        v.append(v)
        return v
    if kind == "bigint":
        return [10 ** 5000]
    if kind == "surrogate":
        return "bad \\udc80 text"
    if kind == "key":
        return {1: "not a text key"}
    return kind
'''


@pytest.mark.parametrize("kind, why", [
    ("bytes", "$ is a bytes"), ("set", "$ is a set"), ("datetime", "$ is a datetime.datetime"),
    ("generator", "$ is a generator"), ("deep", "nested deeper than 200 levels"),
    ("cycle", "(or is part of a cycle)"), ("bigint", "$[0] is an integer of more than 4300 digits"),
    ("key", "has a key that is not text"),
])
def test_a_tool_result_that_is_not_json_data_is_a_located_error(tmp_path, capsys, kind, why):
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "t.pflow").write_text('tool make(kind: str) -> any = python "tools:make"\n')
    code, _, err = pflow(["run", str(tmp_path / "t.pflow"), "make", "-i", f"kind={kind}",
                          "--trace-dir", str(tmp_path / "traces")], capsys)
    assert code == 1
    assert "t.pflow:1:6: error: tool 'make' returned a value that is not JSON data: " in err
    assert why in err


def test_a_tool_result_with_a_lone_surrogate_is_kept_and_traced(tmp_path, capsys):
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "t.pflow").write_text('tool make(kind: str) -> any = python "tools:make"\n')
    code, out, _ = pflow(["run", str(tmp_path / "t.pflow"), "make", "-i", "kind=surrogate",
                          "--trace-dir", str(tmp_path / "traces")], capsys)
    assert code == 0 and out.strip() == "bad \ufffd text"
    assert "\\ufffd" in traces_text(tmp_path) or "\ufffd" in traces_text(tmp_path)


def test_a_huge_integer_never_breaks_the_trace():
    from promptflow_dsl.runtime.trace import TraceRecorder, scrub

    assert scrub(10 ** 5000).startswith("<integer of ")
    rec = TraceRecorder("p", "f", {"n": 10 ** 5000})
    rec.to_trace(output=[10 ** 5000]).model_dump_json()  # writable


@pytest.mark.parametrize("value", ['"x"', "1e400", "NaN", "[1]", "-5", "true"])
def test_hostile_usage_is_unknown_usage(served, fake_openai, capsys, tmp_path, value):
    body = ('{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
            '"finish_reason":"stop"}],"usage":{"prompt_tokens":V,"completion_tokens":V}}'
            ).replace("V", value).encode()
    fake_openai.raw(body)
    code, out, _ = pflow(run_args(served(), "s", "x=a"), capsys)
    assert code == 0 and out.strip() == "hi"
    totals = json.loads(traces_text(tmp_path))["totals"]
    assert totals["prompt_tokens"] == 0 and totals["cost"] in (None, 0.0)


DECOMPOSER = '''
model default = "local/smollm2"
tool upper(question: str) -> str = python "tools:upper"
tool boom(question: str) -> str = python "tools:boom"
tool pick(question: str) -> str = python "tools:pick"
tool many(question: str) -> list[str] = python "tools:many"
decompose deep(question: str) -> any {{
  handlers {{ deep: deep, upper: upper, boom: boom, pick: pick, many: many }}
  prompt """
    QC: x
    QS: [upper] x
    A: "X"
    QS: [EOQ]
  """
  max_depth {depth}
  max_steps 20
  {calls}
}}
'''

DECOMPOSER_TOOLS = '''
import asyncio

def upper(question):
    return question.upper()

async def boom(question):
    await asyncio.sleep(0)
    raise ValueError("boom")

async def pick(question):
    if question == "boom":
        raise ValueError("boom")
    await asyncio.Event().wait()   # never finishes unless cancelled

def many(question):
    return (["boom"] if question == "boom" else []) + [str(i) for i in range(10)]
'''


def decomposer(tmp_path: Path, depth: int = 100, calls: str = "") -> Path:
    (tmp_path / "tools.py").write_text(DECOMPOSER_TOOLS)
    path = tmp_path / "d.pflow"
    path.write_text(DECOMPOSER.format(depth=depth, calls=calls))
    return path


def test_max_depth_over_the_limit_is_a_check_error(tmp_path, capsys):
    code, _, err = pflow(["check", str(decomposer(tmp_path, depth=5000))], capsys)
    assert code == 2 and "d.pflow:15:13: error: max_depth of decompose 'deep' is 5000; " \
                          "it can be at most 100" in err


def test_self_recursion_to_max_depth_uses_no_stack_per_level(tmp_path):
    h = Harness(pf.load(decomposer(tmp_path, depth=100)))
    h.mock_model("default", ["[deep] again"] * 200)
    with pytest.raises(RunError) as info:
        h.run("deep", question="q")
    assert "a decomposer call at depth 101 is past max_depth 100" in info.value.message
    assert h.calls("deep") == 101


def test_foreach_inside_recursion_is_bounded_by_max_calls(tmp_path):
    h = Harness(pf.load(decomposer(tmp_path, depth=50, calls="max_calls 25")))
    # every level lists ten items and recurses on each of them: 10, 100, ... calls
    h.mock_model("default", ["[many] list", "(foreach) [deep] #1"] * 200)
    with pytest.raises(RunError) as info:
        h.run("deep", question="q")
    assert "past max_calls 25" in info.value.message
    assert h.calls("deep") + h.calls("many") <= 26


def test_a_failed_foreach_item_cancels_its_siblings(tmp_path):
    from promptflow_dsl.models.scripted import ScriptedBackend

    program = pf.load(decomposer(tmp_path))
    # items run concurrently (not one by one as under the harness): the first fails, the
    # others would wait for ever unless cancelled
    backend = ScriptedBackend("scripted", ["[many] boom", "(foreach) [pick] #1"])
    config = RunConfig(backends={"local/smollm2": backend}, cache=CacheMode.OFF,
                       write_trace=False)
    with pytest.raises(RunError) as info:
        program.run("deep", config=config, question="q")
    assert "(item 1) → tool 'pick' raised ValueError: boom" in info.value.message


# ------------------------------------------------------------------ 2. files


@pytest.mark.parametrize("content", [
    "[1, 2]", '{"format": 1, "tests": []}', '{"format": 1, "tests": {"t": 5}}',
    '{"format": 1, "tests": {"t": [7]}}',
    '{"format": 1, "tests": {"t": [{"model": "default", "kind": "chat", "request": "x"}]}}',
    '{"format": 1, "tests": {"t": [{"model": "default", "kind": "chat", "request": "x", '
    '"reply": 5}]}}',
    '{"format": 1, "tests": {"t": [{"model": "m", "kind": "capabilities", "request": "", '
    '"reply": {"warp": true}}]}}',
    DEEP, "not json",
])
def test_a_malformed_recordings_file_is_a_located_error(tmp_path, capsys, content):
    path = tmp_path / "t.pflow"
    path.write_text('prompt s(x: str) -> str = "s {{ x }}"\n'
                    'test "t" live {\n  expect s(x="a") == "a"\n}\n')
    (tmp_path / "t.pflow.replay.json").write_text(content)
    code, out, err = pflow(["test", str(path)], capsys)
    assert code == 2 and "t.pflow.replay.json" in out + err


def test_a_deeply_nested_trace_file_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "20250101T000000.000Z-abcdef.json"
    bad.write_text('{"schema_version": "pflow-trace/1", "inputs": ' + "[" * 5000 + "]" * 5000
                   + "}")
    code, _, err = pflow(["trace", "show", str(bad)], capsys)
    assert code == 2 and "nested deeper than" in err


def test_a_corrupt_cache_is_a_miss_and_clear_recreates_it(served, fake_openai, capsys, tmp_path,
                                                          caplog):
    path = served()
    assert pflow(run_args(path, "s", "x=a", cache=True), capsys)[0] == 0
    (tmp_path / "cache" / "cache.db").write_bytes(b"this is not a database" * 100)
    code, out, err = pflow(run_args(path, "s", "x=a", cache=True), capsys)
    assert code == 0 and out.strip() == "s a" and fake_openai.count == 2  # a miss
    assert "cannot be read" in caplog.text + err
    code, _, err = pflow(["cache", "info", "--cache-dir", "cache"], capsys)
    assert code == 1 and "pflow cache clear` recreates it" in err
    code, out, _ = pflow(["cache", "clear", "--cache-dir", "cache"], capsys)
    assert code == 0 and "recreated it empty" in out
    assert pflow(run_args(path, "s", "x=a", cache=True), capsys)[0] == 0
    assert pflow(run_args(path, "s", "x=a", cache=True), capsys)[0] == 0
    assert fake_openai.count == 3  # cached again after the clear


# ------------------------------------------------------------------ 3. unbounded work


def test_a_trigger_the_regex_engine_rejects_never_runs_unbounded(monkeypatch):
    def reject(pattern):
        raise ValueError("unsupported here")

    program = pf.loads('hook h {\n  when r"x+"\n  run upper("!")\n}\n'
                       'prompt p(x: str) -> str {\n  user "{{ x }}"\n  hooks [h]\n}\n')
    # `pflow check` refuses such a pattern too (test_hook_patterns.py); the run keeps its guard
    monkeypatch.setattr(triggers._regex, "compile", reject)
    harness = Harness(program)
    harness.mock_model("default", ["xxx"])
    with pytest.raises(RunError) as info:
        harness.run("p", x="q")
    assert "cannot be searched with a timeout" in info.value.message
    assert info.value.span is not None and info.value.span.line == 2
    assert harness.model_calls("default") == []  # refused before any model call


def test_a_gzip_bomb_is_cut_off(served, fake_openai, capsys, monkeypatch):
    monkeypatch.setenv("PFLOW_MAX_REPLY_BYTES", str(1 << 20))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = packer.compress(b'{"choices": "' + b"a" * (32 << 20)) + packer.flush()
    assert len(bomb) < 64 * 1024
    fake_openai.raw(bomb, headers={"Content-Encoding": "gzip"})
    code, _, err = pflow(run_args(served(), "s", "x=a"), capsys)
    assert code == 1 and "p.pflow:2:" in err
    assert "the reply body is larger than 1,048,576 bytes once decoded" in err


def test_json_extraction_is_linear(monkeypatch):
    calls = []
    real = jsondata.raw_decode

    def counting(decoder, text, start):
        calls.append(start)
        return real(decoder, text, start)

    monkeypatch.setattr(jsondata, "raw_decode", counting)
    # an unclosed reply: the old search started again at each of the 200 "[" and read to
    # the end from each (quadratic: 15 s of CPU for a 1.8 MB reply of this shape)
    text = "[" * 200 + "1, " * 20_000
    with pytest.raises(ValueError, match="not JSON"):
        asking.extract_json(text)
    assert len(calls) == 1
    calls.clear()
    assert asking.extract_json('Here: {"a": [1, } oops {"b": 2} and [3]') == {"b": 2}
    assert len(calls) == 2


def test_a_large_reply_is_parsed_off_the_event_loop(served, fake_openai, capsys, monkeypatch):
    threads = []
    real = asyncio.to_thread

    async def spy(fn, *args):
        threads.append(fn)
        return await real(fn, *args)

    monkeypatch.setattr(asking.asyncio, "to_thread", spy)
    fake_openai.set_replies([json.dumps(["x" * 1000] * 300)])  # ~300 KB
    code, out, _ = pflow(run_args(served(), "j", "x=[1]"), capsys)
    assert code == 0 and len(json.loads(out)) == 300 and len(threads) == 1


# ------------------------------------------------------------------ 4. wrong or unsafe


@pytest.mark.parametrize("client", ["fast", "litellm"])
@pytest.mark.parametrize("body", [b'{"choices":"abc"}', b'{"choices":[{"index":0}]}',
                                  b'{"choices":[]}'])
def test_a_malformed_reply_is_an_error_and_never_cached(served, fake_openai, capsys, monkeypatch,
                                                        client, body):
    if client == "litellm":
        monkeypatch.setenv("PFLOW_CLIENT", "litellm")
    path = served()
    fake_openai.raw(body, times=2)  # both attempts (num_retries 1)
    code, _, err = pflow(run_args(path, "s", "x=a", cache=True), capsys)
    assert code == 1 and "p.pflow:2:" in err and fake_openai.count == 2
    code, out, _ = pflow(run_args(path, "s", "x=a", cache=True), capsys)
    assert code == 0 and out.strip() == "s a" and fake_openai.count == 3  # nothing was cached


@pytest.mark.parametrize("client", ["fast", "litellm"])
def test_a_key_the_server_echoes_is_masked_everywhere(served, fake_openai, capsys, monkeypatch,
                                                      tmp_path, client):
    if client == "litellm":
        monkeypatch.setenv("PFLOW_CLIENT", "litellm")
    fake_openai.echo_key()
    code, _, err = pflow(run_args(served(), "s", "x=a"), capsys)
    assert code == 1 and "Incorrect API key provided: ***" in err
    assert KEY not in err and KEY not in traces_text(tmp_path)
    assert "***" in traces_text(tmp_path)


def test_secrets_sent_are_collected_by_value(monkeypatch):
    from promptflow_dsl.runtime.context import sent_secrets

    program = pf.loads('model a = "openai/x" { api_key: "inline-key-12345678" }\n'
                       'model b = "openai/y" { api_key_env: "ODD_NAME" }\n'
                       'prompt s(x: str) -> str { model a  user "{{ x }}" }\n')
    secrets = sent_secrets(program, {"ODD_NAME": "from-env-87654321", "FLAG": "1",
                                     "OPENAI_API_KEY": "sk-openai-abcdefgh"})
    assert set(secrets) == {"inline-key-12345678", "from-env-87654321", "sk-openai-abcdefgh"}


def test_datetime_and_set_are_not_silently_converted():
    for value in (dt.date(2025, 1, 1), {1}, b"x", object()):
        with pytest.raises(jsondata.NotJSONData):
            jsondata.to_data({"v": [value]})
    assert jsondata.to_data((1, "a\udc80")) == [1, "a\ufffd"]
    assert os.environ.get("PFLOW_MAX_REPLY_BYTES") is None


# ------------------------------------------------------------------ requests in flight, across processes


def _hold_lock(cache_dir: Path, key: str) -> int:
    """Take the key's lock as another process would (a descriptor of our own)."""
    from promptflow_dsl.runtime import cachelock

    fd = cachelock.try_lock(cache_dir, key)
    assert fd is not None and fd >= 0
    return fd


def test_a_miss_waits_for_another_process_computing_the_same_entry(tmp_path):
    from promptflow_dsl.runtime import cachelock
    from promptflow_dsl.runtime.cache import ResponseCache

    key = "ab" * 32
    computed = []

    async def compute():
        computed.append(1)
        return {"text": "mine"}

    async def main():
        other = ResponseCache(tmp_path)  # the other process's view of the folder
        mine = ResponseCache(tmp_path)
        await other.set(key, {"text": "theirs"})  # opens the store; then drop the entry
        other.clear()
        fd = _hold_lock(tmp_path, key)
        task = asyncio.create_task(mine.get_or_compute(key, compute))
        while mine.lock_waits == 0:  # until it found the lock taken
            await asyncio.sleep(0.01)
        await other.set(key, {"text": "theirs"})
        cachelock.unlock(tmp_path, key, fd)
        value, hit = await task
        other.close()
        mine.close()
        return value, hit

    value, hit = asyncio.run(main())
    assert (value, hit, computed) == ({"text": "theirs"}, True, [])
    assert not cachelock.lock_path(tmp_path, key).exists()


def test_a_holder_finishing_between_the_read_and_the_lock_is_still_a_hit(tmp_path, monkeypatch):
    """The other process stores its reply and releases the lock just after this one
    read the cache and just before it takes the lock: the reply is found, not recomputed."""
    from promptflow_dsl.runtime import cachelock
    from promptflow_dsl.runtime.cache import ResponseCache

    key = "ef" * 32
    computed = []
    real_try_lock = cachelock.try_lock
    other = ResponseCache(tmp_path)

    def try_lock_after_the_other_finished(directory, k):
        if not other_done:
            other_done.append(1)
            asyncio.run(other.set(key, {"text": "theirs"}))
        return real_try_lock(directory, k)

    other_done: list[int] = []
    monkeypatch.setattr(cachelock, "try_lock", try_lock_after_the_other_finished)

    async def compute():
        computed.append(1)
        return {"text": "mine"}

    async def main():
        mine = ResponseCache(tmp_path)
        try:
            return await mine.get_or_compute(key, compute)
        finally:
            mine.close()

    value, hit = asyncio.run(main())
    other.close()
    assert (value, hit, computed) == ({"text": "theirs"}, True, [])
    assert not cachelock.lock_path(tmp_path, key).exists()


def test_a_dead_holder_never_blocks(tmp_path):
    import signal
    import subprocess
    import sys

    from promptflow_dsl.runtime.cache import ResponseCache

    key = "cd" * 32
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; "
         "from promptflow_dsl.runtime import cachelock; "
         f"fd = cachelock.try_lock(Path({str(tmp_path)!r}), {key!r}); "
         "print(fd, flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert int(holder.stdout.readline()) >= 0  # it holds the lock
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()

    async def compute():
        return {"text": "computed"}

    async def main():
        cache = ResponseCache(tmp_path)
        try:
            return await cache.get_or_compute(key, compute)
        finally:
            cache.close()

    assert asyncio.run(main()) == ({"text": "computed"}, False)


def test_a_holder_that_never_finishes_is_waited_for_a_bounded_time(tmp_path):
    from promptflow_dsl.runtime import cachelock
    from promptflow_dsl.runtime.cache import ResponseCache

    key = "ef" * 32
    fd = _hold_lock(tmp_path, key)

    async def compute():
        return {"text": "computed anyway"}

    async def main():
        cache = ResponseCache(tmp_path, lock_wait=0.05)
        try:
            return await cache.get_or_compute(key, compute), cache.lock_waits
        finally:
            cache.close()

    try:
        assert asyncio.run(main()) == (({"text": "computed anyway"}, False), 1)
    finally:
        cachelock.unlock(tmp_path, key, fd)


def test_an_unclosed_fence_of_300k_characters_is_parsed_in_linear_time():
    from promptflow_dsl.runtime.asking import extract_json, unfence

    assert unfence("```json\n[1, 2]\n```") == "[1, 2]"
    assert extract_json("```json\n{\"a\": 1}\n```") == {"a": 1}
    with pytest.raises(ValueError, match="not JSON"):
        extract_json("```" + "x" * 300_000)  # a backtracking fence pattern took minutes
