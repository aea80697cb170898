"""Stage run over real HTTP: litellm against the loopback fake OpenAI server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from run_config import cfg

import promptflow_dsl as pf
from promptflow_dsl.runtime import RunFailed
from promptflow_dsl.runtime.cache import CacheMode

SECRET = "sk-fake-secret-key-0123456789"

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key_env: "PFLOW_FAKE_KEY", timeout: {timeout} }}
type V {{ label: "a" | "b", n: int }}
prompt say(x: str) -> str = "say {{{{ x }}}}"
prompt judge(x: str) -> V = "judge {{{{ x }}}}"
flow fan(n: int) -> list[str] {{
  return [say(x=str(i)) for i in split(join([str(i) for i in [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]], " "))]
}}
flow two(x: str) -> list[str] {{
  a = say(x=x)
  b = say(x=x)
  return [a, b]
}}
flow partial(x: str) -> {{ok: str, bad: str}} {{
  ok = say(x="fine")
  bad = say(x=x)
  return {{ok: ok, bad: bad}}
}}
'''


@pytest.fixture
def make(tmp_path: Path, fake_openai, monkeypatch):
    monkeypatch.setenv("PFLOW_FAKE_KEY", SECRET)

    def _make(timeout: float = 5.0):
        path = tmp_path / "p.pflow"
        path.write_text(PROGRAM.format(base=fake_openai.base_url, timeout=timeout))
        return pf.load(path)

    return _make


def test_chat_through_litellm(make, fake_openai, tmp_path):
    r = make().run("say", config=cfg(tmp_path), x="hi")
    assert r.value == "say hi"
    body = fake_openai.requests[0]["body"]
    assert body["messages"][-1]["content"] == "say hi"
    headers = {k.lower(): v for k, v in fake_openai.requests[0]["headers"].items()}
    assert headers.get("authorization") == f"Bearer {SECRET}"
    assert SECRET not in r.trace_path.read_text()


def test_structured_output_is_re_asked(make, fake_openai, tmp_path):
    fake_openai.set_replies(["no json here", '{"label": "b", "n": 2}'])
    r = make().run("judge", config=cfg(tmp_path), x="q")
    assert r.value == {"label": "b", "n": 2}
    assert fake_openai.count == 2
    assert "not valid" in fake_openai.requests[1]["body"]["messages"][-1]["content"]


def test_transport_retries_429_and_500(make, fake_openai, tmp_path):
    fake_openai.fail(429, times=1, retry_after=0)
    fake_openai.fail(500, times=1)
    r = make().run("say", config=cfg(tmp_path), x="x")
    assert r.value == "say x"
    assert fake_openai.count == 3


def test_hang_times_out_with_a_clear_error(make, fake_openai, tmp_path):
    fake_openai.hang(times=10)
    with pytest.raises(RunFailed) as info:
        make(timeout=0.3).run("say", config=cfg(tmp_path, max_attempts=2), x="x")
    msg = info.value.message
    assert "openai/fake" in msg and "prompt 'say'" in msg
    assert "2 attempts" in msg


def test_fan_out_runs_all_32_at_once(make, fake_openai, tmp_path):
    fake_openai.set_latency(0.4)
    r = make().run("fan", config=cfg(tmp_path), n=32)
    assert len(r.value) == 32 and fake_openai.count == 32
    assert fake_openai.max_in_flight == 32


def test_concurrency_limit_is_respected(make, fake_openai, tmp_path):
    fake_openai.set_latency(0.1)
    make().run("fan", config=cfg(tmp_path, concurrency=5), n=32)
    assert fake_openai.max_in_flight == 5


def test_per_model_limit(tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("PFLOW_FAKE_KEY", SECRET)
    fake_openai.set_latency(0.1)
    path = tmp_path / "p.pflow"
    path.write_text(PROGRAM.format(base=fake_openai.base_url, timeout=5).replace(
        "timeout: 5 }", "timeout: 5, concurrency: 3 }"))
    pf.load(path).run("fan", config=cfg(tmp_path), n=32)
    assert fake_openai.max_in_flight == 3 and fake_openai.count == 32


def test_second_run_is_served_from_cache(make, fake_openai, tmp_path):
    program = make()
    config = cfg(tmp_path, cache=CacheMode.DEFAULT)
    program.run("fan", config=config, n=32)
    assert fake_openai.count == 32
    again = program.run("fan", config=config, n=32)
    assert fake_openai.count == 32  # zero new requests
    assert again.trace.totals.cache_hits == 32


def test_identical_requests_in_flight_are_made_once(make, fake_openai, tmp_path):
    fake_openai.set_latency(0.3)
    r = make().run("two", config=cfg(tmp_path, cache=CacheMode.DEFAULT), x="same")
    assert r.value == ["say same", "say same"]
    assert fake_openai.count == 1


def test_failure_propagates_and_independent_steps_finish(make, fake_openai, tmp_path):
    fake_openai.fail(400, times=1)  # the first request fails for good (4xx is not retried)
    with pytest.raises(RunFailed) as info:
        make().run("partial", config=cfg(tmp_path, sequential=True), x="other")
    steps = [s for s in info.value.trace.steps if s.handler == "say"]
    assert [s.status for s in steps] == ["failed", "ok"]
    assert "HTTP 400" in info.value.message and "prompt 'say'" in info.value.message


def test_poisoned_cache_entry_is_a_miss(make, fake_openai, tmp_path):
    program = make()
    config = cfg(tmp_path, cache=CacheMode.DEFAULT)
    program.run("say", config=config, x="p")
    import sqlite3

    db = tmp_path / "cache" / "cache.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE Cache SET value = 'not json {', mode = 1")
    con.commit()
    con.close()
    r = program.run("say", config=config, x="p")
    assert r.value == "say p"
    assert fake_openai.count == 2


def test_arun_inside_an_event_loop(make, tmp_path):
    program = make()

    async def main():
        return await program.arun("say", config=cfg(tmp_path), x="async")

    assert asyncio.run(main()).value == "say async"


# ---------------------------------------------------------------- a literal api_key

LITERAL_KEY = "literal-key-0123456789"  # no `sk-` prefix: only pflow knows it is a secret

KEYED = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "{key}"{client} }}
model other = "openai/fake" {{ api_base: "{base}", api_key: "{key}-other"{client} }}
prompt say(x: str) -> str = "say {{{{ x }}}}"
prompt own(x: str) -> str {{
  user "own {{{{ x }}}}"
  params {{ api_key: "{key}-own" }}
}}
prompt third(x: str) -> str {{
  model other
  user "third {{{{ x }}}}"
}}
flow both(x: str) -> list[str] {{
  return [say(x=x), own(x=x), third(x=x)]
}}
'''


def _auth(request: dict) -> str | None:
    return {k.lower(): v for k, v in request["headers"].items()}.get("authorization")


@pytest.mark.parametrize("client", ["", ', client: "litellm"'], ids=["lean", "litellm"])
def test_api_key_in_the_model_and_in_params_is_sent_and_kept_secret(tmp_path, fake_openai, client):
    path = tmp_path / "p.pflow"
    path.write_text(KEYED.format(base=fake_openai.base_url, key=LITERAL_KEY, client=client))
    config = cfg(tmp_path, cache=CacheMode.DEFAULT, sequential=True)
    r = pf.load(path).run("both", config=config, x="hi")
    assert r.value == ["say hi", "own hi", "third hi"]
    by_text = {q["body"]["messages"][-1]["content"]: q for q in fake_openai.requests}
    assert _auth(by_text["say hi"]) == f"Bearer {LITERAL_KEY}"
    assert _auth(by_text["own hi"]) == f"Bearer {LITERAL_KEY}-own"  # the handler's own key wins
    assert _auth(by_text["third hi"]) == f"Bearer {LITERAL_KEY}-other"  # same id, another key
    for q in fake_openai.requests:
        assert LITERAL_KEY not in json.dumps(q["body"])
    written = [p for p in (tmp_path / "traces").rglob("*") if p.is_file()]
    written += [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert written and any(p.suffix == ".json" for p in written)
    for p in written:
        assert LITERAL_KEY.encode() not in p.read_bytes(), p
    again = pf.load(path).run("both", config=config, x="hi")  # the key is not part of the cache key
    assert again.trace.totals.cache_hits == 3 and fake_openai.count == 3

