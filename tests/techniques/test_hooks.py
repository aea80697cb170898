"""Language hooks (issue 6): triggers, actions, budgets, chunking, the cache, models.

Offline: a streaming test backend (``Chunked``) and the scripted mocks; real HTTP
against the loopback fake OpenAI server (completion-, chat- and prefill-style
continuations); the embedded local model, run for real in one short test.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from corpus_paths import REPO, SHARED_EXAMPLES
from doc_blocks import check_blocks, pflow_blocks

import promptflow_dsl as pf
from promptflow_dsl.kinds.prompt import triggers as ht
from promptflow_dsl.kinds.prompt.continuation import CHATML_END, CONTINUE_REQUEST, chatml
from promptflow_dsl.kinds.prompt.hooks import HOOK_BUDGET
from promptflow_dsl.models.base import (
    Capabilities,
    GenParams,
    Message,
    Reply,
    ScriptError,
    StreamEvent,
    Usage,
)
from promptflow_dsl.models.emulate import whitespace_chunks
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode, ResponseCache
from promptflow_dsl.testing.harness import Harness
from promptflow_dsl.testing.runner import run_test

# ---------------------------------------------------------------- helpers


def per_char(text: str) -> list[str]:
    return list(text)


def per_word(text: str) -> list[str]:
    return whitespace_chunks(text)


def per_seven(text: str) -> list[str]:
    return [text[i:i + 7] for i in range(0, len(text), 7)]


def whole(text: str) -> list[str]:
    return [text]


def random_sizes(text: str) -> list[str]:
    rng = random.Random(7)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 12)
        out.append(text[i:i + n])
        i += n
    return out


CHUNKERS = [per_char, per_word, per_seven, whole, random_sizes]


class Chunked:
    """A streaming backend for tests: replies from a queue, cut into chunks by
    ``chunker``; records calls and how each stream ended."""

    def __init__(self, replies: list[str], chunker=per_word, caps: Capabilities | None = None,
                 delay: float = 0.0) -> None:
        self.model_id = "chunked"
        self.capabilities = caps or Capabilities(completion=True)
        self.replies = list(replies)
        self.chunker = chunker
        self.delay = delay
        self.calls: list[dict[str, Any]] = []
        self.open = 0
        self.closed_early = 0

    def _next(self, kind: str, messages: Any, prefix: Any, params: GenParams) -> str:
        if not self.replies:
            raise ScriptError(self.model_id, "no replies left in the test backend")
        text = self.replies.pop(0)
        self.calls.append({"kind": kind, "messages": messages, "prefix": prefix,
                           "params": params, "reply": text})
        return text

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        text = self._next("chat", messages, None, params)
        return Reply(text, self.model_id, Usage(1, len(text.split())), "stop")

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        text = self._next("complete", None, prefix, params)
        return Reply(text, self.model_id, Usage(1, len(text.split())), "stop")

    async def stream(self, messages, prefix, params):
        text = self._next("stream", messages, prefix, params)
        self.open += 1
        done = False
        try:
            for chunk in self.chunker(text):
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield StreamEvent(chunk)
            done = True
            yield StreamEvent("", usage=Usage(1, len(text.split())), finish_reason="stop")
        finally:
            self.open -= 1
            if not done:
                self.closed_early += 1

    async def score(self, prefix, continuations):
        raise NotImplementedError

    async def embed(self, texts):
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def config(backend: Any, **kw: Any) -> RunConfig:
    kw.setdefault("cache", CacheMode.OFF)
    kw.setdefault("write_trace", False)
    return RunConfig(backends={"default": backend}, **kw)


def events(result: Any, type_: str = "hook") -> list[dict[str, Any]]:
    step = result.trace.steps[0]
    return [e for e in step.events if e["type"] == type_]


HEADER = '''
model default = "openai/chunked"
import std.hooks
'''

# ---------------------------------------------------------------- trigger kinds and actions

MIXED = HEADER + '''
hook shout {
  when r"!(?=\\s)"
  run upper(segment)
  action replace_segment
}
hook guard {
  when hooks.is_refusal(sentence=segment)
  run hooks.best_effort(segment=segment)
  action replace_segment
}
hook done {
  when r"That is all(?=\\.)"
  run lower(".")
  action stop
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [hooks.calc, shout, guard, done]
}
prompt plain(x: str) -> str = "{{ x }}"
'''

MIXED_REPLIES = [
    "First, 12 * 12 = 100 is wrong. Then we cheer! It works. Dropped.",
    " so much. I'm sorry, I cannot help. Dropped too.",
    " We add 3 + 4 =",
    " to get there. That is all. Never seen.",
]
MIXED_OUT = ("First, 12 * 12 = 144 so much. I cannot be fully certain, but here is my "
             "best-effort answer: We add 3 + 4 = 7 to get there. That is all.")


def test_regex_and_call_triggers_with_every_action():
    program = pf.loads(MIXED)
    backend = Chunked(MIXED_REPLIES)
    r = program.run("p", config=config(backend), x="go")
    # insert: calc puts 144 after "12 * 12 =" and the rest of reply 1 is dropped;
    # replace_segment by a call trigger: the refusal sentence becomes the best-effort
    # request; insert again (3 + 4 = 7); stop: "That is all" + "." ends the text
    assert [(e["hook"], e["action"]) for e in events(r)] == [
        ("hooks.calc", "insert"), ("guard", "replace_segment"), ("hooks.calc", "insert"),
        ("done", "stop")]
    assert r.value == MIXED_OUT
    assert len(backend.calls) == 4 and backend.closed_early == 4


def test_trace_records_every_firing():
    program = pf.loads(MIXED)
    r = program.run("p", config=config(Chunked(MIXED_REPLIES)), x="go")
    first = events(r)[0]
    assert first["hook"] == "hooks.calc" and first["trigger"] == "12 * 12 ="
    assert first["trigger_kind"] == "regex" and first["groups"] == {"expr": "12 * 12"}
    assert first["input"] == {"expr": "12 * 12"} and first["output"] == " 144"
    assert first["position"] == len("First, 12 * 12 =") and first["action"] == "insert"
    assert first["dropped"] == " "  # the received text after the trigger point (chunk "= ")
    for key in ("close_ms", "program_ms", "resume_ms", "strategy", "generation"):
        assert key in first
    guard = next(e for e in events(r) if e["hook"] == "guard")
    assert guard["trigger_kind"] == "call" and guard["input"] == {"segment": "I'm sorry, I cannot help."}
    step = r.trace.steps[0]
    assert step.cache_hit is False and step.extra["hooks"]["fired"] == len(events(r))
    # the programs are child steps of the prompt's step
    children = {s.handler for s in r.trace.steps if s.parent == step.id}
    assert {"hooks.calculate", "hooks.is_refusal", "hooks.best_effort"} <= children


@pytest.mark.parametrize("chunker", CHUNKERS, ids=lambda c: c.__name__)
def test_triggers_fire_the_same_whatever_the_chunking(chunker):
    program = pf.loads(MIXED)
    reference = program.run("p", config=config(Chunked(MIXED_REPLIES, per_word)), x="go")
    r = program.run("p", config=config(Chunked(MIXED_REPLIES, chunker)), x="go")
    assert r.value == reference.value == MIXED_OUT
    key = [(e["hook"], e["position"], e["trigger"], e["output"]) for e in events(reference)]
    assert [(e["hook"], e["position"], e["trigger"], e["output"]) for e in events(r)] == key
    assert len(key) == 4


def test_regex_match_fires_once_and_if_is_checked_first():
    program = pf.loads(HEADER + '''
hook tag {
  when r"(?P<n>#\\d+)\\s*$"
  if len(text) > 10
  run upper("!")
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [tag]
}
''')
    # "#1" is too early (text "a #1" has 4 characters); "#2" is eligible; the match
    # "#2", "#2 ", "#2  " is one match (same start) and fires once
    backend = Chunked(["a #1 then #2   and on", " and on"], per_char)
    r = program.run("p", config=config(backend), x="x")
    assert r.value == "a #1 then #2! and on"
    assert [e["trigger"] for e in events(r)] == ["#2"]


def test_call_trigger_if_is_checked_before_the_trigger(tmp_path):
    program = pf.loads(HEADER + '''
hook guard {
  when hooks.is_refusal(sentence=segment)
  if len(segment) > 100
  run hooks.best_effort(segment=segment)
  action replace_segment
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [guard]
}
''')
    h = Harness(program)
    h.mock_model("default", ["I'm sorry, I cannot help. Short."])
    assert h.run("p", x="q") == "I'm sorry, I cannot help. Short."
    assert h.calls("hooks.is_refusal") == 0


def test_sentence_ends_and_segments():
    text = "It costs 2.5 dollars. Really? \"Yes.\" Next line\nand more"
    ends = [ht.sentence_end(text, p) for p in range(len(text) + 1)]
    points = [e for e in ends if e is not None]
    assert [text[:e] for e in points] == [
        "It costs 2.5 dollars.", "It costs 2.5 dollars. Really?",
        "It costs 2.5 dollars. Really? \"Yes.\"", "It costs 2.5 dollars. Really? \"Yes.\" Next line"]
    assert ht.segment_of("A. B is 2.5 and") == "B is 2.5 and"
    assert ht.segment_of("First one. Second one.") == "Second one."
    assert ht.segment_of("Line one\n  next =") == "next ="
    assert ht.segment_of("") == ""
    assert ht.final_sentence_end("Done.  \n") == 5 and ht.final_sentence_end("   ") is None


def test_hook_program_output_does_not_trigger_hooks():
    program = pf.loads(HEADER + '''
hook echo {
  when r"go(?=\\W)"
  run upper(" go go go.")
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [echo]
}
''')
    r = program.run("p", config=config(Chunked(["Ready, go! x", " Done."])), x="x")
    assert r.value == "Ready, go GO GO GO. Done."
    assert len(events(r)) == 1


def test_a_failing_program_fails_the_prompt(tmp_path):
    (tmp_path / "boom_tools.py").write_text(
        "def boom(x: str) -> str:\n    raise ValueError('cannot handle ' + x)\n")
    path = tmp_path / "p.pflow"
    path.write_text('''
model default = "openai/chunked"
tool boom(x: str) -> str = python "boom_tools:boom"
hook h {
  when r"(?P<w>bad)(?=\\s)"
  run boom(x=w)
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [h]
}
''')
    with pytest.raises(RunFailed) as info:
        pf.load(path).run("p", config=config(Chunked(["this is bad text"])), x="x")
    assert "cannot handle bad" in info.value.message


def test_literal_union_return_is_validated():
    program = pf.loads(HEADER + '''
prompt yes_no(x: str) -> "yes" | "no" {
  user "{{ x }}"
  hooks [hooks.calc]
}
''')
    assert program.run("yes_no", config=config(Chunked(["Yes"])), x="x").value == "yes"
    with pytest.raises(RunFailed) as info:
        program.run("yes_no", config=config(Chunked(["maybe"])), x="x")
    assert "hooked text does not match" in info.value.message

# ---------------------------------------------------------------- budgets


def test_max_fires_and_the_total_budget():
    program = pf.loads(HEADER + '''
hook hashes {
  when r"#\\d(?=\\D)"
  run upper("!")
  max_fires 15
}
hook ats {
  when r"@\\d(?=\\D)"
  run upper("?")
  max_fires 15
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [hashes, ats]
}
''')
    backend = Chunked([" a #1 b @2 c"] * 30)
    r = program.run("p", config=config(backend), x="x")
    fired = [e["hook"] for e in events(r)]
    assert fired.count("hashes") == 15 and fired.count("ats") == 5
    assert len(fired) == HOOK_BUDGET == 20
    assert len(backend.calls) == 21  # the 21st generation streams to its end untouched
    assert r.value.endswith(" a #1 b @2 c")
    assert events(r, "hook_budget")


def test_max_tokens_bounds_the_whole_call():
    program = pf.loads(HEADER + '''
prompt p(x: str) -> str {
  user "{{ x }}"
  params { max_tokens: 10 }
  hooks [hooks.calc]
}
''')
    backend = Chunked(["So 2 + 2 = 5 and", " then 3 + 3 = 9 more", " never"])
    r = program.run("p", config=config(backend), x="x")
    # generation 1 is cut after 5 chunks ("So 2 + 2 =" in word chunks): 5 tokens left
    assert backend.calls[1]["params"].max_tokens == 5
    assert r.value == "So 2 + 2 = 4 then 3 + 3 = 6"
    assert events(r, "hook_budget")


def test_a_pathological_regex_on_long_text_finishes_quickly():
    program = pf.loads(HEADER + '''
hook evil {
  when r"(x+x+)+y"
  run upper("!")
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [evil]
}
''')
    text = "x" * 5000 + " end"
    started = time.perf_counter()
    r = program.run("p", config=config(Chunked([text], per_seven)), x="x")
    elapsed = time.perf_counter() - started
    assert r.value == text
    assert elapsed < 5.0
    disabled = events(r, "hook_disabled")
    if ht.ENGINE == "regex":
        assert disabled and "switched off" in disabled[0]["summary"]


def test_regex_search_is_bounded_by_the_window_and_the_timeout():
    trig = ht.RegexTrigger(r"(x+x+)+y")
    text = "x" * 3000
    started = time.perf_counter()
    for p in range(len(text) - 50, len(text) + 1):
        trig.scan(text, p)
    assert time.perf_counter() - started < 2.0
    if ht.ENGINE == "regex":
        assert trig.disabled is not None and trig.timeouts >= 1


def test_no_unbounded_re_fallback_without_the_regex_package(monkeypatch):
    monkeypatch.setattr(ht, "_regex", None)
    with pytest.raises(ht.UnboundedPattern, match="never searched without a timeout"):
        ht.RegexTrigger(r"(?P<expr>\d+ \* \d+) =$")


def test_matches_cut_by_the_window_start_are_not_new_matches():
    trig = ht.RegexTrigger(r"\b[a-z]+(?=\s)")
    text = "a" * 1000 + " and more words"
    found = [m for p in range(1, len(text) + 1) for m in trig.scan(text, p)]
    # the long word starts before the window when its space arrives: a match at the
    # window's start may be cut off, so it is not taken (nor are later windows' tails)
    assert [m.text for m in found] == ["and", "more"]


# ---------------------------------------------------------------- the cache


def test_a_cut_stream_is_never_served_from_the_cache_as_a_whole_reply(tmp_path):
    program = pf.loads(HEADER + '''
prompt hooked(x: str) -> str {
  user "{{ x }}"
  hooks [hooks.calc]
}
prompt plain(x: str) -> str = "{{ x }}"
''')
    backend = Chunked(["So 2 + 2 = 5, wrong.", " in all.", "So 2 + 2 = 5, wrong.",
                       "So 2 + 2 = 5, wrong.", " in all."])
    cfg = config(backend, cache=CacheMode.DEFAULT, cache_dir=tmp_path / "cache")
    first = program.run("hooked", config=cfg, x="q")
    assert first.value == "So 2 + 2 = 4 in all."
    assert backend.closed_early == 1
    assert ResponseCache(tmp_path / "cache").info()["entries"] == 0
    plain = program.run("plain", config=cfg, x="q")  # same messages: a model call, whole reply
    assert plain.value == "So 2 + 2 = 5, wrong." and plain.trace.steps[0].cache_hit is False
    again = program.run("hooked", config=cfg, x="q")  # not served from plain's cached reply
    assert again.value == "So 2 + 2 = 4 in all."
    assert len(backend.calls) == 5 and not backend.replies
    assert again.trace.totals.cache_hits == 0

# ---------------------------------------------------------------- concurrency and mocks


def test_triggers_and_programs_calling_models_do_not_deadlock_at_concurrency_1():
    program = pf.loads(HEADER + '''
prompt aside(w: str) -> str = "a word about {{ w }}"
prompt judge(s: str) -> bool = "is this long? {{ s }}"
hook note {
  when judge(s=segment)
  run aside(w=segment)
}
prompt talk(x: str) -> str {
  user "{{ x }}"
  hooks [note]
}
flow both(x: str) -> list[str] {
  return [talk(x=x), talk(x=x)]
}
''')
    h = Harness(program)
    h.mock_model("default", ["false", "true", "false"], handler="judge")
    h.mock_model("default", [" (aside)"] * 2, handler="aside")
    h.mock_model("default", ["One. Two. Dropped.", " Three."] * 2)
    h._run.config.concurrency = 1

    async def go():
        return await asyncio.wait_for(h.arun("talk", x="x"), 10)

    assert asyncio.run(go()) == "One. Two. (aside) Three."
    # and with real concurrency (no mocks' sequential mode) on the test backend
    backend = Chunked(["One. Two.", "false", "true", " (aside)", " Three.", "false"])
    cfg = config(backend, concurrency=1)
    r = asyncio.run(asyncio.wait_for(program.arun("talk", config=cfg, x="x"), 10))
    assert r.value == "One. Two. (aside) Three."
    assert not backend.replies


def test_mocks_stream_then_continue_with_the_next_reply():
    program = pf.loads(HEADER + '''
prompt solve(problem: str) -> str {
  user "Solve: {{ problem }}"
  hooks [hooks.calc]
}
''')
    h = Harness(program)
    h.mock_model("default", ["So 7 * 12 = 83 and more", " eggs."])
    assert h.run("solve", problem="eggs") == "So 7 * 12 = 84 eggs."
    calls = h.model_calls("default")
    assert [c.kind for c in calls] == ["stream", "stream"]
    assert calls[0].messages is not None and calls[0].prefix is None
    # mocks offer completion without prefill: the continuation is a raw completion of
    # the ChatML transcript and the text so far
    assert calls[1].prefix == chatml([Message("user", "Solve: eggs")]) + "So 7 * 12 = 84"
    assert CHATML_END in calls[1].params.stop


def test_the_spec_example_and_the_shipped_hook_programs_pass_their_tests(monkeypatch):
    monkeypatch.chdir(REPO)  # the retrieval example's corpus path is relative to the repo
    files = [REPO / "examples/hooks/calculator.pflow", REPO / "examples/hooks/retrieval.pflow",
             REPO / "examples/hooks/guardrail.pflow", REPO / "stdlib/hooks.pflow",
             REPO / "tests/pflow/hooks_semantics.pflow"]
    if (SHARED_EXAMPLES / "word_problems.pflow").is_file():
        files.append(SHARED_EXAMPLES / "word_problems.pflow")
    for path in files:
        program = pf.load(path)
        for test in program.tests:
            outcome = run_test(program, test)
            assert outcome.passed, f"{path.name}: {test.name}: {outcome.message}"

# ---------------------------------------------------------------- models over HTTP

HTTP_PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key_env: "PFLOW_FAKE_KEY"{extra} }}
import std.hooks
prompt solve(problem: str) -> str {{
  user "Solve: {{{{ problem }}}}"
  hooks [hooks.calc]
}}
'''


@pytest.fixture
def http_program(tmp_path: Path, fake_openai, monkeypatch):
    monkeypatch.setenv("PFLOW_FAKE_KEY", "sk-fake-0123456789")

    def make(extra: str = ""):
        path = tmp_path / "p.pflow"
        path.write_text(HTTP_PROGRAM.format(base=fake_openai.base_url, extra=extra))
        return pf.load(path)

    return make


def _cfg(tmp_path: Path) -> RunConfig:
    return RunConfig(cache=CacheMode.OFF, trace_dir=tmp_path / "traces")


def _paths(fake) -> list[str]:
    return [r["path"].split("?")[0] for r in fake.requests]


# a Llama-3 style template, declared on the model: the continuation is rendered with it
LLAMA3_TEMPLATE = ("{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\\n\\n"
                   "{{ m.content }}<|eot_id|>{% endfor %}"
                   "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>"
                   "\\n\\n{% endif %}")


def test_completion_style_model_continues_by_raw_completion(http_program, fake_openai, tmp_path):
    fake_openai.set_latency(0.0, chunk_delay=0.02)
    fake_openai.set_replies(["So 7 * 12 = 99 and" + " more" * 40, " eggs."])
    extra = f', completion: true, chat_template: "{LLAMA3_TEMPLATE}"'
    r = http_program(extra).run("solve", config=_cfg(tmp_path), problem="eggs")
    assert r.value == "So 7 * 12 = 84 eggs."
    assert _paths(fake_openai) == ["/v1/chat/completions", "/v1/completions"]
    first, second = (q["body"] for q in fake_openai.requests)
    assert first["stream"] is True  # the first generation streams; the continuation is
    assert not second.get("stream")  # one raw completion (remote `stream` cannot do it)
    assert second["prompt"] == ("<|start_header_id|>user<|end_header_id|>\n\nSolve: eggs<|eot_id|>"
                                "<|start_header_id|>assistant<|end_header_id|>\n\nSo 7 * 12 = 84")
    assert "<|eot_id|>" in second["stop"] and CHATML_END not in second["stop"]
    assert r.trace.steps[0].extra["hooks"]["strategy"] == "completion"
    deadline = time.time() + 3
    while fake_openai.aborted < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert fake_openai.aborted >= 1  # the first stream was closed part-way


def test_completion_model_without_a_known_template_uses_the_continuation_prompt(
        http_program, fake_openai, tmp_path):
    # ChatML would be wrong for most models: without their template, a continuation prompt
    fake_openai.set_replies(["So 7 * 12 = 99 wrong", " eggs."])
    r = http_program(", completion: true").run("solve", config=_cfg(tmp_path), problem="eggs")
    assert r.value == "So 7 * 12 = 84 eggs."
    assert _paths(fake_openai) == ["/v1/chat/completions"] * 2
    assert r.trace.steps[0].extra["hooks"]["strategy"] == "prompt"


def test_chat_style_model_continues_with_a_continuation_prompt(http_program, fake_openai, tmp_path):
    # the model echoes the text before continuing: the echo is cut off
    fake_openai.set_replies(["So 7 * 12 = 99 wrong", "So 7 * 12 = 84 eggs."])
    r = http_program().run("solve", config=_cfg(tmp_path), problem="eggs")
    assert r.value == "So 7 * 12 = 84 eggs."
    assert _paths(fake_openai) == ["/v1/chat/completions"] * 2
    messages = fake_openai.requests[1]["body"]["messages"]
    assert messages[-2] == {"role": "assistant", "content": "So 7 * 12 = 84"}
    assert messages[-1] == {"role": "user", "content": CONTINUE_REQUEST}
    assert r.trace.steps[0].extra["hooks"]["strategy"] == "prompt"


def test_prefill_model_continues_the_assistant_message(http_program, fake_openai, tmp_path):
    fake_openai.set_replies(["So 7 * 12 = 99 wrong", " eggs."])
    r = http_program(", prefill: true").run("solve", config=_cfg(tmp_path), problem="eggs")
    assert r.value == "So 7 * 12 = 84 eggs."
    messages = fake_openai.requests[1]["body"]["messages"]
    assert messages == [{"role": "user", "content": "Solve: eggs"},
                        {"role": "assistant", "content": "So 7 * 12 = 84"}]
    assert r.trace.steps[0].extra["hooks"]["strategy"] == "prefill"

@pytest.mark.parametrize("client", ["", ', client: "litellm"'])
def test_a_vllm_server_continues_the_assistant_message_when_asked_to(http_program, fake_openai,
                                                                      tmp_path, client):
    # vLLM starts a new answer after a final assistant message unless the request says
    # continue_final_message (and no new generation prompt): its profile sends both
    fake_openai.set_replies(["So 7 * 12 = 99 wrong", " eggs."])
    r = http_program(', server: "vllm"' + client).run("solve", config=_cfg(tmp_path), problem="eggs")
    assert r.value == "So 7 * 12 = 84 eggs."
    first, second = (q["body"] for q in fake_openai.requests)
    assert "continue_final_message" not in first
    assert second["messages"][-1] == {"role": "assistant", "content": "So 7 * 12 = 84"}
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    assert "server" not in second
    assert r.trace.steps[0].extra["hooks"]["strategy"] == "prefill"

# ---------------------------------------------------------------- the embedded local model


def _local_available() -> bool:
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from promptflow_dsl.models.local import find_gguf

    path = find_gguf()
    return path is not None and path.is_file()


@pytest.mark.skipif(not _local_available(), reason="the local model is not installed")
def test_hook_programs_and_triggers_on_the_local_model_that_is_generating():
    program = pf.loads('''
model default = "local/smollm2" { temperature: 0 }
prompt aside(w: str) -> str {
  user "Say one word about {{ w }}."
  params { max_tokens: 3 }
}
prompt ask(s: str) -> str {
  user "Is this a sentence? {{ s }}"
  params { max_tokens: 4 }
}
flow short(s: str) -> bool {
  a = ask(s=s)
  return len(a) > 0
}
hook note {
  when r"(?P<w>[A-Za-z]{4,})(?=[\\s,.])"
  run aside(w=w)
  max_fires 1
}
hook check {
  when short(s=segment)
  run aside(w="end")
  max_fires 1
}
prompt talk(topic: str) -> str {
  user "Write two short sentences about {{ topic }}."
  params { max_tokens: 32 }
  hooks [note, check]
}
''')
    from promptflow_dsl.models.registry import local_backend

    cfg = RunConfig(cache=CacheMode.OFF, write_trace=False, concurrency=1)
    r = asyncio.run(asyncio.wait_for(program.arun("talk", config=cfg, topic="cats"), 240))
    step = r.trace.steps[0]
    assert step.model == "local/smollm2"
    assert step.extra["hooks"]["strategy"] == "prefill"
    fired = [e for e in step.events if e["type"] == "hook"]
    assert fired and fired[0]["hook"] == "note"
    asides = [s for s in r.trace.steps if s.handler == "aside" and s.parent == step.id]
    assert asides and all(s.model == "local/smollm2" and s.status == "ok" for s in asides)
    # the call trigger (a flow calling a prompt on the same model) ran while the stream
    # was open, at a sentence end
    asks = [s for s in r.trace.steps if s.handler == "ask"]
    assert asks and all(s.model == "local/smollm2" and s.status == "ok" for s in asks)
    assert fired[0]["output"] in r.value
    assert step.extra["hooks"]["tokens"] <= 32
    assert not local_backend()._owner.busy  # the model was released

# ---------------------------------------------------------------- the checker


def test_checker_warns_about_open_ended_triggers_and_unreachable_max_fires():
    program = pf.loads('''
hook a { when r"(?P<n>\\d+)" run upper(n) }
hook b { when r"\\bcat\\b" run upper(text) }
hook c { when r"(?P<n>\\d+)(?=\\D)" run upper(n) max_fires 25 }
hook d { when r"(?P<e>\\d[\\d\\s+*/-]*)=\\s*$" run upper(e) }
''')
    messages = [w.message for w in program.warnings]
    assert any("hook 'a' ends in an open repetition" in m for m in messages)
    assert any("hook 'b' ends in `\\b`" in m for m in messages)
    assert any("max_fires 25 is never reached" in m for m in messages)
    assert not any("'d'" in m for m in messages)

# ---------------------------------------------------------------- std.hooks tools


def _std_tools():
    spec = importlib.util.spec_from_file_location("std_hooks_tools", REPO / "stdlib" / "hooks_tools.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calculator_tools():
    t = _std_tools()
    assert t.calculate("7 * 12 ") == " 84"
    assert t.calculate("1,200 x 3 =") == " 3600"
    assert t.calculate("(2 + 3) × 4 ÷ 2") == " 10"
    assert t.calculate("10 / 3") == " 3.3333"
    assert t.calculate("2 ** 0.5") == " 1.4142"
    assert t.calculate("__import__('os')") == "" and t.calculate("") == ""
    assert t.calculate("10 ** 1000") == "" and t.calculate("1/0") == ""
    with pytest.raises(ValueError, match="longer than"):
        t.evaluate("1+" * 150 + "1")
    assert t.is_wrong("24 * 17", "420") and not t.is_wrong("24 * 17", "408")
    assert not t.is_wrong("24 * 17", "many")
    assert t.fix_result("so 24 * 17 = 420", "24 * 17", "420") == "so 24 * 17 = 408"


def test_retrieval_tools(tmp_path, monkeypatch):
    t = _std_tools()
    jsonl = tmp_path / "facts.jsonl"
    jsonl.write_text(json.dumps({"entity": "Ada Lovelace", "aliases": ["Lovelace"],
                                 "fact": "Ada Lovelace wrote the first program."}) + "\n")
    txt = tmp_path / "facts.txt"
    txt.write_text("# people\nGrace Hopper: Grace Hopper wrote the first compiler\n")
    assert t.needs_fact("Lovelace was brilliant.", "", str(jsonl))
    assert not t.needs_fact("Lovelaces are rare.", "", str(jsonl))  # whole words only
    assert not t.needs_fact("Lovelace.", "Ada Lovelace wrote the first program.", str(jsonl))
    assert t.fact_for("Ask grace hopper.", "", str(txt)) == " Grace Hopper wrote the first compiler."
    monkeypatch.setenv("PFLOW_FACTS", str(txt))
    assert t.needs_fact("Grace Hopper", "")
    monkeypatch.delenv("PFLOW_FACTS")
    with pytest.raises(ValueError, match="PFLOW_FACTS"):
        t.needs_fact("x", "")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"entity": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        t.load_corpus(str(bad))


def test_guardrail_tools():
    t = _std_tools()
    assert t.is_refusal("I’m sorry, but I can’t help with that.")
    assert t.is_refusal("I cannot answer that.") and t.is_refusal("As an AI, I don't know.")
    assert not t.is_refusal("I cannot be fully certain, but here is my best-effort answer:")
    assert not t.is_refusal("The sorry state of affairs.")
    assert "best-effort" in t.best_effort("I'm sorry")


# ---------------------------------------------------------------- the reference


def test_reference_pflow_blocks_check_and_their_tests_pass(tmp_path, capsys):
    blocks = pflow_blocks(REPO / "docs" / "techniques" / "hooks.md")
    assert len(blocks) >= 2
    check_blocks(blocks, tmp_path, capsys)
