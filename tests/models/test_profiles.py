"""Server profiles: recognising a server from its answers, the cache file, the
capabilities and request fields a profile gives, the GGUF chat template reader."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from promptflow_dsl.models import profiles as P
from promptflow_dsl.models.base import Capabilities, Message
from promptflow_dsl.models.openai_http import OpenAIHTTPBackend


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "servers.json"))
    monkeypatch.setenv(P.PROBE_ENV, "1")
    P.forget()
    yield
    P.forget()


def fetcher(answers: dict[str, tuple[int, dict[str, str], Any]]):
    asked: list[str] = []

    def fetch(url: str):
        asked.append(url)
        return answers.get(url)

    fetch.asked = asked  # type: ignore[attr-defined]
    return fetch


BASE = "http://h:1/v1"


def models(owner: str, model_id: str = "m") -> tuple[int, dict[str, str], Any]:
    return 200, {}, {"data": [{"id": model_id, "owned_by": owner}]}


@pytest.mark.parametrize("answers,kind", [
    ({BASE + "/models": models("vllm")}, "vllm"),
    ({BASE + "/models": models("llamacpp"), "http://h:1/props": (200, {}, {
        "chat_template": "T", "eos_token": "</s>", "bos_token": "<s>"})}, "llama.cpp"),
    ({BASE + "/models": models("library")}, "ollama"),
    ({BASE + "/models": (200, {"x-litellm-version": "1"}, {"data": []})}, "litellm-proxy"),
    ({BASE + "/models": models("me"),
      "http://h:1/openapi.json": (200, {}, {"info": {"title": "🦙 llama.cpp Python API"}})},
     "llama-cpp-python"),
    ({BASE + "/models": models("x"), "http://h:1/api/version": (200, {}, {"version": "0.5"})}, "ollama"),
    ({BASE + "/models": models("x"), "http://h:1/info": (200, {}, {"model_id": "m"})}, "tgi"),
    ({BASE + "/models": models("x"), "http://h:1/version": (200, {}, {"version": "0.9"})}, "vllm"),
    ({BASE + "/models": models("x")}, "unknown"),
])
def test_the_kind_is_recognised_from_the_answers(answers, kind):
    profile = P.probe(BASE, fetch=fetcher(answers))
    assert profile is not None and profile.kind == kind
    if kind == "llama.cpp":
        assert (profile.chat_template, profile.eos_token) == ("T", "</s>")


def test_a_server_that_does_not_answer_has_no_profile_and_nothing_is_cached(tmp_path):
    fetch = fetcher({})
    assert P.server_profile(BASE, {}, fetch=fetch) is None
    assert fetch.asked == [BASE + "/models"]  # stopped at the first unanswered request
    assert not (tmp_path / "servers.json").exists()


def test_the_profile_is_cached_with_an_expiry_and_probed_once(tmp_path):
    fetch = fetcher({BASE + "/models": models("vllm")})
    assert P.server_profile(BASE, {}, fetch=fetch, now=1000.0).kind == "vllm"
    assert P.server_profile(BASE + "/", {}, fetch=fetch, now=1001.0).kind == "vllm"
    assert len(fetch.asked) == 1
    cached = P.read_cached(BASE, now=1000.0 + P.PROFILE_TTL - 1)
    assert cached is not None and cached.kind == "vllm"
    assert P.read_cached(BASE, now=1000.0 + P.PROFILE_TTL + 1) is None  # expired
    P.forget()  # a new process reads the file instead of asking
    assert P.server_profile(BASE, {}, fetch=fetch, now=1002.0).kind == "vllm"
    assert len(fetch.asked) == 1


def test_probing_off_and_a_declared_kind(monkeypatch):
    monkeypatch.setenv(P.PROBE_ENV, "0")
    fetch = fetcher({BASE + "/models": models("vllm")})
    assert P.server_profile(BASE, {}, fetch=fetch) is None
    assert P.server_profile(BASE, {"server": "tgi"}, fetch=fetch).kind == "tgi"
    assert fetch.asked == []
    with pytest.raises(ValueError, match="unknown server kind 'vlm'"):
        P.server_profile(BASE, {"server": "vlm"})


def test_declared_flags_win_over_the_profile():
    profile = P.profile_of_kind("llama-cpp-python")
    caps = P.profiled_capabilities(Capabilities(), profile, {"json_schema": False, "prefill": True})
    assert (caps.json_schema, caps.prefill, caps.completion, caps.logprobs, caps.grammar) == (
        False, True, True, True, True)
    # an unrecognised server changes nothing
    assert P.profiled_capabilities(Capabilities(), P.ServerProfile("unknown"), {}) == Capabilities()


@pytest.mark.parametrize("kind,fields", [
    ("vllm", {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {}}}}),
    ("llama-cpp-python", {"response_format": {"type": "json_object", "schema": {}}}),
    ("llama.cpp", {"extra_body": {"json_schema": {}}}),
])
def test_structured_output_per_kind(kind, fields):
    assert P.structured_fields(P.profile_of_kind(kind), {}, "r") == fields


def test_vllm_continues_a_final_assistant_message_with_its_fields():
    msgs = [Message("user", "q"), Message("assistant", "So")]
    assert P.prefill_fields(P.profile_of_kind("vllm"), msgs) == {
        "continue_final_message": True, "add_generation_prompt": False}
    assert P.prefill_fields(P.profile_of_kind("vllm"), msgs[:1]) == {}
    assert P.prefill_fields(P.profile_of_kind("llama-cpp-python"), msgs) == {}


def test_the_chat_prefix_uses_the_models_own_template():
    template = ("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}"
                "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}")
    profile = P.profile_of_kind("llama.cpp", chat_template=template, bos_token="<s>", eos_token="</s>")
    assert P.chat_prefix(profile, [Message("user", "hi")]) == "<s>[user]hi</s>[assistant]"
    assert P.end_of_turn(profile) == ("</s>",)
    assert P.chat_prefix(P.profile_of_kind("llama.cpp"), [Message("user", "hi")]) is None
    bad = P.profile_of_kind("llama.cpp", chat_template="{{ raise_exception('no') }}")
    assert P.chat_prefix(bad, [Message("user", "hi")]) is None


def _gguf(path: Path, kv: list[tuple[str, int, bytes]]) -> Path:
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    for key, kind, raw in kv:
        k = key.encode()
        out += struct.pack("<Q", len(k)) + k + struct.pack("<I", kind) + raw
    path.write_bytes(out)
    return path


def _s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def test_the_gguf_reader_finds_the_template_and_the_bos_eos_tokens(tmp_path):
    tokens = struct.pack("<IQ", 8, 3) + _s("<unk>") + _s("<s>") + _s("</s>")
    path = _gguf(tmp_path / "m.gguf", [
        ("general.name", 8, _s("m")),
        ("general.numbers", 9, struct.pack("<IQ", 5, 2) + struct.pack("<ii", 1, 2)),
        ("tokenizer.ggml.tokens", 9, tokens),
        ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
        ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 2)),
        ("tokenizer.chat_template", 8, _s("{{ messages }}")),
    ])
    assert P.gguf_chat_template(path) == ("{{ messages }}", "<s>", "</s>")
    assert P.gguf_chat_template(tmp_path / "missing.gguf") is None
    (tmp_path / "x.gguf").write_bytes(b"nope")
    assert P.gguf_chat_template(tmp_path / "x.gguf") is None


def test_the_backend_asks_for_json_the_servers_way_and_never_sends_the_profile_keys():
    b = OpenAIHTTPBackend("openai/m", {"api_base": BASE, "server": "llama-cpp-python"})
    assert b.capabilities.json_schema and b.capabilities.logprobs and not b.capabilities.prefill
    from promptflow_dsl.models.base import GenParams

    kw = b._chat_request([Message("user", "q")],
                         GenParams(json_schema={"type": "object"}, extra={"server": "x"}))
    assert kw["response_format"] == {"type": "json_object", "schema": {"type": "object"}}
    assert "server" not in kw
    bad = OpenAIHTTPBackend("openai/m", {"api_base": BASE, "server": "nope"})
    with pytest.raises(Exception, match="unknown server kind"):
        _ = bad.capabilities


SKETCH = '''
model default = "openai/m" {{ api_base: "{base}" }}
sketch v(claim: str) -> {{ answer: str }} {{
  template """Claim: {{{{ claim }}}}. True? [answer in {{"yes", "no"}}]"""
}}
'''


def test_pflow_check_uses_a_cached_profile_and_asks_no_server(tmp_path, monkeypatch):
    import promptflow_dsl as pf

    monkeypatch.delenv(P.CACHE_ENV)
    path = tmp_path / "s.pflow"
    path.write_text(SKETCH.format(base=BASE))
    warned = [w.message for w in pf.load(path).warnings]
    assert any("cannot enforce the choices" in m for m in warned)  # nothing known: a warning
    # a run probed the server: a llama-cpp-python server scores choices with log-probs
    cache = tmp_path / ".pflow-cache" / "servers.json"
    P.write_cached(BASE, P.profile_of_kind("llama-cpp-python"), path=cache)
    assert pf.load(path).warnings == []
    # an expired entry no longer counts
    P.write_cached(BASE, P.profile_of_kind("llama-cpp-python"), now=0.0, path=cache)
    assert pf.load(path).warnings != []


def test_the_checker_knows_the_server_kinds(tmp_path):
    import promptflow_dsl as pf
    from promptflow_dsl.check.env import SERVER_KINDS
    from promptflow_dsl.diagnostics import CompileError

    assert SERVER_KINDS == P.KINDS
    path = tmp_path / "m.pflow"
    path.write_text('model default = "openai/m" { api_base: "http://h/v1", server: "vllm", '
                    'chat_template: "{{ messages }}" }\nprompt p(x: str) -> str = "{{ x }}"\n')
    assert pf.load(path).warnings == []
    path.write_text(path.read_text().replace('"vllm"', '"vlm"'))
    with pytest.raises(CompileError, match="unknown server kind 'vlm'"):
        pf.load(path)


def test_the_checkers_server_table_matches_the_profiles():
    from promptflow_dsl.check.capabilities import (
        SERVER_CAPABILITIES,
        ModelCaps,
        static_capabilities,
    )

    assert set(SERVER_CAPABILITIES) == set(P.KINDS)
    for kind in P.KINDS:
        caps = P.profile_of_kind(kind).capabilities(Capabilities())
        assert SERVER_CAPABILITIES[kind] == {k: getattr(caps, k) for k in SERVER_CAPABILITIES[kind]}
    declared = static_capabilities("openai/m", {"api_base": BASE, "server": "llama-cpp-python"})
    assert declared == ModelCaps(completion=True, logprobs=True, grammar=True, json_schema=True)
    # a declared flag still wins
    assert not static_capabilities("openai/m", {"api_base": BASE, "server": "vllm",
                                                "logprobs": False}).logprobs


def test_the_probe_sends_the_models_key_and_forgets_refusals():
    import http.server
    import json
    import threading

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            ok = self.headers.get("Authorization") == "Bearer sk-probe-123456"
            body = json.dumps({"data": [{"id": "m", "owned_by": "vllm"}]} if ok else
                              {"error": "no key"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        assert P.server_profile(base, {}) is None  # refused: nothing known, nothing cached
        assert P.read_cached(base) is None
        P.forget()
        profile = P.server_profile(base, {}, api_key="sk-probe-123456")
        assert profile is not None and profile.kind == "vllm"
        assert seen[-1] == "Bearer sk-probe-123456"
    finally:
        server.shutdown()
        server.server_close()
