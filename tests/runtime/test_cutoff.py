"""Cut-off replies: a reply that stopped at max_tokens and does not validate says so in
its error, and is re-asked at most once (runtime/asking.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.models.base import Reply
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

PROGRAM = '''
model default = "echo" {max_tokens: 20}
model open = "echo"
type V { label: "a" | "b", n: int(min=1, max=5) }
prompt judge(x: str) -> V {
  user "judge {{ x }}"
  retries 3
}
prompt judge_open(x: str) -> V {
  model open
  user "judge {{ x }}"
  retries 3
}
prompt say(x: str) -> str {
  user "say {{ x }}"
}
'''


class Cutting(ScriptedBackend):
    """A scripted model whose replies ending in ``~`` stop at the token limit (the ``~``
    is dropped): ``finish_reason == "length"``."""

    async def chat(self, messages, params):
        reply = await super().chat(messages, params)
        if reply.text.endswith("~"):
            return Reply(reply.text[:-1], reply.model, reply.usage, "length")
        return reply


@pytest.fixture
def program(tmp_path: Path):
    (tmp_path / "p.pflow").write_text(PROGRAM)
    return pf.load(tmp_path / "p.pflow")


def run(program, tmp_path: Path, handler: str, backend: ScriptedBackend, model: str = "default",
        **inputs):
    config = RunConfig(backends={model: backend}, cache=CacheMode.OFF, write_trace=False,
                       trace_dir=tmp_path / "traces")
    return program.run(handler, config=config, **inputs)


def last_user(call) -> str:
    return [m.content for m in call.messages if m.role == "user"][-1]


def test_a_cut_off_reply_is_re_asked_with_the_limit(program, tmp_path):
    model = Cutting("default", ['{"label": "a", "n": ~', '{"label": "a", "n": 2}'])
    assert run(program, tmp_path, "judge", model, x="y").value == {"label": "a", "n": 2}
    assert len(model.calls) == 2
    reask = last_user(model.calls[1])
    assert "the reply is not JSON (cut off at max_tokens=20" in reask
    assert "must be shorter" in reask


def test_a_second_cut_off_reply_ends_the_call_without_spending_the_retries(program, tmp_path):
    model = Cutting("default", ['{"label": "a", ~', '{"label": ~', '{"label": "a", "n": 2}'])
    with pytest.raises(RunFailed) as info:
        run(program, tmp_path, "judge", model, x="y")
    assert len(model.calls) == 2  # retries 3 would allow 4
    message = str(info.value)
    assert "after 2 attempts" in message
    assert "cut off at max_tokens=20" in message


def test_a_cut_off_reply_that_breaks_a_constraint_says_both(program, tmp_path):
    model = Cutting("default", ['{"label": "a", "n": 9}~', '{"label": "b", "n": 3}'])
    assert run(program, tmp_path, "judge", model, x="y").value == {"label": "b", "n": 3}
    reask = last_user(model.calls[1])
    assert "$.n: at most 5, got 9 (cut off at max_tokens=20" in reask


def test_a_cut_off_reply_that_validates_is_the_answer(program, tmp_path):
    model = Cutting("default", ["a long text that stopped~"])
    assert run(program, tmp_path, "say", model, x="y").value == "a long text that stopped"
    assert len(model.calls) == 1


def test_replies_that_were_not_cut_off_use_every_retry(program, tmp_path):
    model = Cutting("default", ["no", "no", "no", "no"])
    with pytest.raises(RunFailed) as info:
        run(program, tmp_path, "judge", model, x="y")
    assert len(model.calls) == 4
    assert "cut off" not in str(info.value)


def test_without_max_tokens_the_message_names_the_default_limit(program, tmp_path):
    model = Cutting("open", ['{"label": ~', '{"label": "a", "n": 1}'])
    assert run(program, tmp_path, "judge_open", model, model="open", x="y").value == \
        {"label": "a", "n": 1}
    assert "cut off at max_tokens (the model's default limit)" in last_user(model.calls[1])


# --------------------------------------------------------------------------- over HTTP

HTTP_PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-fake", max_tokens: 4{client} }}
type V {{ label: "a" | "b", n: int }}
prompt judge(x: str) -> V {{
  user "judge {{{{ x }}}}"
  retries 3
}}
'''


@pytest.fixture
def limited(monkeypatch):
    """The fake server stops a chat reply at the request's max_tokens (its whitespace-led
    words), with finish_reason "length", as an OpenAI-compatible server does."""
    import fakeserver

    original = fakeserver._Handler._completion_obj

    def completion_obj(self, body, text, chat):
        limit = body.get("max_tokens")
        tokens = fakeserver.fake_tokens(text)
        cut = chat and isinstance(limit, int) and len(tokens) > limit
        obj = original(self, body, "".join(tokens[:limit]) if cut else text, chat)
        if cut:
            obj["choices"][0]["finish_reason"] = "length"
        return obj

    monkeypatch.setattr(fakeserver._Handler, "_completion_obj", completion_obj)


@pytest.mark.parametrize("client", ["", ', client: "litellm"'])
def test_a_server_reply_stopped_at_max_tokens(tmp_path, fake_openai, limited, client):
    (tmp_path / "p.pflow").write_text(HTTP_PROGRAM.format(base=fake_openai.base_url, client=client))
    program = pf.load(tmp_path / "p.pflow")
    fake_openai.set_replies(['{"label": "a", "n": 1, "note": "far too long"}', '{"label": "a", "n": 1}',
                             '{"label": "b", "n": 2}'])
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, trace_dir=tmp_path / "traces")
    assert program.run("judge", config=config, x="y").value == {"label": "a", "n": 1}
    bodies = fake_openai.bodies
    assert len(bodies) == 2
    assert all(b["max_tokens"] == 4 for b in bodies)
    reask = bodies[1]["messages"][-1]["content"]
    assert "cut off at max_tokens=4" in reask


def test_two_server_replies_stopped_at_max_tokens_fail_the_call(tmp_path, fake_openai, limited):
    (tmp_path / "p.pflow").write_text(HTTP_PROGRAM.format(base=fake_openai.base_url, client=""))
    program = pf.load(tmp_path / "p.pflow")
    fake_openai.set_replies(['{"label": "a", "n": 1, "x": 1}'] * 4)
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, trace_dir=tmp_path / "traces")
    with pytest.raises(RunFailed) as info:
        program.run("judge", config=config, x="y")
    assert fake_openai.count == 2
    assert "cut off at max_tokens=4" in str(info.value)


# --------------------------------------------------------------------------- hooked prompts

HOOKED = '''
model default = "echo"
tool noop(x: str) -> str = python "tools:noop"
hook h {
  when r"never(?=\\s)"
  run noop(x=text)
}
prompt yes_no(x: str) -> "yes" | "no" {
  user "{{ x }}"
  hooks [h]
  params { max_tokens: 3 }
}
'''


class CuttingStream(ScriptedBackend):
    """A scripted model whose streams end with finish_reason "length"."""

    async def stream(self, messages, prefix, params):
        async for ev in super().stream(messages, prefix, params):
            if ev.finish_reason is not None:
                ev.finish_reason = "length"
            yield ev


def test_a_hooked_text_cut_off_says_so(tmp_path):
    (tmp_path / "tools.py").write_text("def noop(x):\n    return x\n")
    (tmp_path / "p.pflow").write_text(HOOKED)
    program = pf.load(tmp_path / "p.pflow")
    model = CuttingStream("default", ["well it depends"])
    with pytest.raises(RunFailed) as info:
        run(program, tmp_path, "yes_no", model, x="y")
    assert "the hooked text does not match" in str(info.value)
    assert str(info.value).rstrip().endswith("(cut off at max_tokens=3)")
