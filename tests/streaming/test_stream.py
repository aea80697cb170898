"""Streaming output: ``Program.stream`` (events as the run goes) and ``pflow run --stream``.

Ordering, not timing, is asserted: with the fake server sending one word at a time
(a pause between chunks), the text pieces arrive as separate events before the final
value, and the steps before the last prompt have finished before its text starts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl import cli
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.streaming import Finished, StepFinished, StepStarted, TextDelta

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-fake-stream-key" }}
prompt outline(topic: str) -> str = "Outline {{{{ topic }}}}"
prompt count(topic: str) -> int = "How many words in {{{{ topic }}}}?"
prompt write(outline: str, n: int) -> str = "Write {{{{ n }}}}: {{{{ outline }}}}"
flow essay(topic: str) -> str {{
  o = outline(topic=topic)
  n = count(topic=topic)
  return write(outline=o, n=n)
}}
'''


def replies(outline: str, count: str, essay: str):
    """A reply function answering each prompt by what it asks (outline and count run
    at the same time, in either order)."""
    def answer(body: dict) -> str:
        asked = body["messages"][-1]["content"]
        if asked.startswith("Outline"):
            return outline
        return count if asked.startswith("How many") else essay

    return answer


def collect(program, handler, config, **inputs):
    async def go():
        return [e async for e in program.stream(handler, config=config, **inputs)]

    return asyncio.run(go())


@pytest.fixture
def essay(tmp_path: Path, fake_openai):
    path = tmp_path / "essay.pflow"
    path.write_text(PROGRAM.format(base=fake_openai.base_url))
    return path


def config(tmp_path: Path, **kw) -> RunConfig:
    return RunConfig(cache=CacheMode.OFF, trace_dir=tmp_path / "traces", **kw)


def test_program_stream_yields_deltas_before_the_final_value(essay, tmp_path, fake_openai):
    fake_openai.set_reply(replies("one two", "3", "The quick brown fox jumps"))
    fake_openai.set_latency(0.0, chunk_delay=0.02)
    program = pf.load(essay)
    events = collect(program, "essay", config(tmp_path), topic="foxes")
    assert isinstance(events[-1], Finished)
    assert events[-1].value == "The quick brown fox jumps"
    deltas = [e for e in events if isinstance(e, TextDelta)]
    # every str prompt streams: the outline's two words, then the essay's five
    assert [d.text for d in deltas if d.handler == "write"] == \
        ["The", " quick", " brown", " fox", " jumps"]
    assert "".join(d.text for d in deltas if d.handler == "outline") == "one two"
    assert not any(d.handler == "count" for d in deltas)  # an int is parsed, not streamed
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("TextDelta") < len(kinds) - 1
    # the steps nest and end in order: essay starts first and finishes last
    started = [e for e in events if isinstance(e, StepStarted)]
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert started[0].handler == "essay" and finished[-1].handler == "essay"
    write_id = next(e.step_id for e in started if e.handler == "write")
    first_write_delta = next(i for i, e in enumerate(events)
                             if isinstance(e, TextDelta) and e.step_id == write_id)
    write_done = next(i for i, e in enumerate(events)
                      if isinstance(e, StepFinished) and e.step_id == write_id)
    assert first_write_delta < write_done
    # the streamed requests asked the server for a stream
    streamed = [r["body"] for r in fake_openai.requests if r["body"].get("stream")]
    assert len(streamed) == 2
    trace = events[-1].trace
    assert {s.handler for s in trace.steps} == {"essay", "outline", "count", "write"}


def test_a_cached_reply_comes_as_one_piece(essay, tmp_path, fake_openai):
    fake_openai.set_reply(replies("a b", "2", "x y z"))
    program = pf.load(essay)
    cfg = RunConfig(cache=CacheMode.DEFAULT, cache_dir=tmp_path / "cache",
                    trace_dir=tmp_path / "traces")
    collect(program, "essay", cfg, topic="t")
    again = collect(program, "essay", cfg, topic="t")
    assert [d.text for d in again if isinstance(d, TextDelta) and d.handler == "write"] == ["x y z"]
    assert again[-1].value == "x y z"


def test_stream_with_a_scripted_model_and_a_failure(tmp_path):
    program = pf.loads('prompt hi(name: str) -> str = "Hi {{ name }}"\n'
                       'prompt n(name: str) -> int = "{{ name }}"\n'
                       'flow both(name: str) -> int {\n  h = hi(name=name)\n'
                       '  return n(name=h)\n}\n')
    model = ScriptedBackend("scripted", ["hello there friend", "not a number"] * 4)
    cfg = config(tmp_path, backends={"default": model})
    events = collect(program, "hi", cfg, name="Ann")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["hello ", "there ", "friend"]
    assert isinstance(events[-1], Finished) and events[-1].value == "hello there friend"
    assert events[-1].trace_path is not None and events[-1].trace_path.is_file()

    async def failing():
        seen = []
        with pytest.raises(RunFailed):
            async for e in program.stream("both", config=cfg, name="Ann"):
                seen.append(e)
        return seen

    seen = asyncio.run(failing())
    assert not any(isinstance(e, Finished) for e in seen)
    assert any(isinstance(e, StepFinished) and e.status == "failed" for e in seen)


def test_leaving_the_loop_early_cancels_the_run(tmp_path):
    program = pf.loads('prompt hi(name: str) -> str = "Hi {{ name }}"\n')
    model = ScriptedBackend("scripted", ["one two three four"])
    cfg = config(tmp_path, backends={"default": model})

    async def go():
        async for e in program.stream("hi", config=cfg, name="x"):
            if isinstance(e, TextDelta):
                return e.text
        return None

    assert asyncio.run(go()) == "one "


def test_cli_run_stream_prints_the_text_and_progress(essay, tmp_path, fake_openai, capsys):
    fake_openai.set_reply(replies("an outline", "4", "The final essay text"))
    fake_openai.set_latency(0.0, chunk_delay=0.01)
    code = cli.main(["run", str(essay), "essay", "-i", "topic=foxes", "--stream", "--no-cache",
                     "--trace-dir", str(tmp_path / "traces")])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == "The final essay text\n"  # only the last prompt's text, once
    assert "outline" in err and "count" in err  # progress lines of the steps before it
    assert "an outline" not in out


def test_cli_run_stream_of_a_non_text_result_prints_the_value(tmp_path, capsys):
    path = tmp_path / "p.pflow"
    path.write_text('model default = "echo"\nprompt n(x: str) -> str = "{{ x }}"\n'
                    'flow f(x: str) -> list[str] {\n  a = n(x=x)\n  return [a, a]\n}\n')
    code = cli.main(["run", str(path), "f", "-i", "x=hey", "--stream", "--no-cache", "--no-trace"])
    out, err = capsys.readouterr()
    assert code == 0 and out.startswith("[") and out.count("hey") == 2


def test_cli_run_stream_does_not_stream_a_prompt_the_flow_also_calls_elsewhere(tmp_path, capsys):
    path = tmp_path / "p.pflow"
    path.write_text('model m = "echo"\nprompt say(x: str) -> str {\n  model m\n  user "{{ x }}"\n}\n'
                    'flow f(x: str) -> str {\n  a = say(x=x)\n  return say(x=a + "!")\n}\n'
                    'flow g(x: str) -> str {\n  a = x + "?"\n  return say(x=a)\n}\n')
    assert cli.main(["run", str(path), "f", "-i", "x=hey", "--stream", "--no-cache",
                     "--no-trace"]) == 0
    out, err = capsys.readouterr()
    assert out == "hey!\n"  # printed once, at the end: the first call's text is not shown
    assert err.count("say") >= 2
    assert cli.main(["run", str(path), "g", "-i", "x=hey", "--stream", "--no-cache",
                     "--no-trace", "-q"]) == 0
    out, err = capsys.readouterr()
    assert out == "hey?\n" and err == ""
