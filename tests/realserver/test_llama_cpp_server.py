"""The HTTP model paths against a real server (llama-cpp-python's, see conftest.py),
through both clients: the fast path and ``client: "litellm"``.

The model is SmolLM2-135M: its replies are nonsense, so these tests assert the
machinery and the shapes (types, counts, which endpoint and strategy was used, errors),
never the text; exact text is what the mocked tests elsewhere check.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from clients import CLIENTS, PROMPTS, backend, posts, run, write_marks
from llama_server import Server, free_port, start_server

import promptflow_dsl as pf
from promptflow_dsl.models import profiles
from promptflow_dsl.models.base import GenParams, Message, ModelError
from promptflow_dsl.runtime import RunFailed

PROGRAM = '''
model default = "openai/smollm2" {{ api_base: "{base}", temperature: 0, seed: 7, max_tokens: 12,
                                   num_retries: 1, timeout: 60{client} }}
model emb = "openai/smollm2-embed" embed {{ api_base: "{emb_base}", embeddings: true, num_retries: 1{client} }}
''' + PROMPTS + '''
prompt short(x: str) -> str {{
  user "One word for {{{{ x }}}}:"
  params {{ max_tokens: 3 }}
}}

flow fan(xs: list[str]) -> list[str] {{
  return [short(x=x) for x in xs]
}}

flow stories(xs: list[str]) -> list[str] {{
  return [story(x=x) for x in xs]
}}

sketch verdict(claim: str) -> {{ answer: str, sure: str }} {{
  decoder sequential
  template """
    Claim: {{{{ claim }}}}
    Is the claim true? [answer in {{"yes", "no"}}]
    Are you sure? [sure in {{"certainly", "maybe", "not at all"}}]
  """
}}

route pick(question: str) -> str {{
  by embedding
  embed emb
  expert maths {{
    instruction "Compute the result. Reply with the number only."
    demos "arith.jsonl"
  }}
  expert places {{
    instruction "Name the capital city. Reply with the city only."
    demos "capitals.jsonl"
  }}
}}

decompose steps(question: str) -> str {{
  handlers {{ say: say }}
  prompt "decomp.txt"
  max_steps 2
}}
'''

DECOMP_PROMPT = '''QC: Say something about cats.
QS: [say] cats
A: Cats are small.
QS: [EOQ]

'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realproject")
    write_marks(root)
    (root / "arith.jsonl").write_text(
        '{"input": "What is 17 plus 25?", "output": "42"}\n'
        '{"input": "What is 9 times 8?", "output": "72"}\n')
    (root / "capitals.jsonl").write_text(
        '{"input": "What is the capital of France?", "output": "Paris"}\n'
        '{"input": "What is the capital of Japan?", "output": "Tokyo"}\n')
    (root / "decomp.txt").write_text(DECOMP_PROMPT)
    return root


def load(project: Path, client: str, base: str, emb_base: str = "http://127.0.0.1:9/v1",
         name: str = "p.pflow") -> Any:
    path = project / f"{client}_{name}"
    path.write_text(PROGRAM.format(base=base, emb_base=emb_base, client=CLIENTS[client]))
    return pf.load(path)


# ---------------------------------------------------------------- the profile


def test_the_server_is_recognised_and_its_template_read(real_server: Server):
    profile = profiles.server_profile(real_server.base_url, {})
    assert profile is not None and profile.kind == "llama-cpp-python"
    assert profile.chat_template and profile.eos_token == "<|im_end|>"
    caps = backend("fast", real_server.base_url).capabilities
    assert (caps.completion, caps.logprobs, caps.json_schema, caps.grammar, caps.prefill) == (
        True, True, True, True, False)
    assert profiles.read_cached(real_server.base_url).kind == "llama-cpp-python"


def test_the_continuation_prompt_is_exactly_what_the_server_renders(real_server: Server,
                                                                    client: str):
    # the raw completion of the template rendered here evaluates as many tokens as the
    # server's own chat rendering of the same messages: the same prompt, special tokens
    # and all, so a continuation sees what the first generation saw
    b = backend(client, real_server.base_url)
    messages = [Message("system", "Be brief."), Message("user", "Solve: 7 boxes of 12 eggs")]
    found = b.chat_transcript(messages)
    assert found is not None
    prefix, stops = found
    assert stops == ("<|im_end|>",) and prefix.endswith("<|im_start|>assistant\n")
    chat = asyncio.run(b.chat(messages, GenParams(max_tokens=1, temperature=0.0)))
    raw = asyncio.run(b.complete(prefix, GenParams(max_tokens=1, temperature=0.0)))
    assert chat.usage.prompt_tokens == raw.usage.prompt_tokens > 10


# ---------------------------------------------------------------- chat, structured output


def test_chat_with_params(real_server: Server, project: Path, client: str, tmp_path: Path):
    program = load(project, client, real_server.base_url)
    first = run(program, "say", tmp_path, x="the sea")
    assert isinstance(first.value, str) and first.value.strip() and "\n" not in first.value
    # (the same request twice may differ: the server reuses its KV cache, which changes
    # float rounding, so exact text is for the mocked tests)
    step = first.trace.steps[0]
    assert step.usage.prompt_tokens > 0 and 0 < step.usage.completion_tokens <= 12


@pytest.mark.parametrize("mode", ["json_object", "grammar"])
def test_structured_output_in_each_mode_the_server_supports(real_server: Server, client: str,
                                                          mode: str):
    b = backend(client, real_server.base_url)
    mark = real_server.mark()
    messages = [Message("user", "Is water wet? Answer in JSON.")]
    if mode == "json_object":  # llama-cpp-python's response_format {type: json_object, schema}
        schema = {"type": "object", "properties": {"wet": {"type": "boolean"}}, "required": ["wet"]}
        reply = asyncio.run(b.chat(messages, GenParams(max_tokens=20, json_schema=schema)))
        import json

        assert isinstance(json.loads(reply.text)["wet"], bool)
    else:  # a GBNF grammar in the request's "grammar" field
        reply = asyncio.run(b.chat(messages, GenParams(max_tokens=4, grammar='root ::= "yes" | "no"')))
        assert reply.text in ("yes", "no")
    # one request, accepted (response_format json_schema would be an HTTP 500 here)
    assert posts(real_server, mark) == [
        ("POST", "/v1/chat/completions", 200)]


def test_a_record_return_type(real_server: Server, project: Path, client: str, tmp_path: Path):
    program = load(project, client, real_server.base_url)
    r = run(program, "pair", tmp_path, x="a dog")
    assert set(r.value) == {"name", "n"} and isinstance(r.value["n"], int)


# ---------------------------------------------------------------- concurrency


def test_a_32_way_fan_out(real_server: Server, project: Path, client: str, tmp_path: Path):
    program = load(project, client, real_server.base_url)
    xs = [f"item {i}" for i in range(32)]
    mark = real_server.mark()
    r = run(program, "fan", tmp_path, xs=xs)
    sent = posts(real_server, mark)
    assert sent == [("POST", "/v1/chat/completions", 200)] * 32
    assert len(r.value) == 32 and all(isinstance(v, str) for v in r.value)
    calls = [s for s in r.trace.steps if s.handler.endswith("short")]
    assert len(calls) == 32


def test_hooked_streams_run_concurrently_and_continue_with_the_models_template(
        real_server: Server, project: Path, client: str, tmp_path: Path):
    program = load(project, client, real_server.base_url)
    mark = real_server.mark()
    r = run(program, "stories", tmp_path, xs=["a cat", "a ship", "rain", "a key"])
    assert len(r.value) == 4
    sent = posts(real_server, mark)
    assert sent.count(("POST", "/v1/chat/completions", 200)) == 4  # the first generations
    assert ("POST", "/v1/completions", 200) in sent  # continuations after a firing
    hooked = [s for s in r.trace.steps if s.handler.endswith("story")]
    for step in hooked:
        info = step.extra["hooks"]
        assert info["strategy"] == "completion"  # raw completion, SmolLM2's own template
    assert any("[seen " in v for v in r.value)


def test_streams_cut_short_by_the_server_are_never_accepted(interrupting_server: Server,
                                                            project: Path, client: str,
                                                            tmp_path: Path):
    # by default llama-cpp-python's server ends the stream in progress when another request
    # comes in: the stream then ends without a finish reason. pflow retries such a stream
    # or fails naming the cut; it never returns the cut-off text as a reply.
    program = load(project, client, interrupting_server.base_url)
    try:
        r = run(program, "stories", tmp_path, xs=["a cat", "a ship", "rain", "a key"])
    except RunFailed as exc:
        assert "cut off" in str(exc) or "finish_reason" in str(exc)
        return
    for step in r.trace.steps:
        if step.handler.endswith("story"):
            assert step.extra["hooks"]["strategy"] == "completion"


# ---------------------------------------------------------------- log-probs, embeddings, completions


def test_sketch_choice_holes_are_scored_with_log_probs(real_server: Server, project: Path,
                                                       client: str, tmp_path: Path):
    program = load(project, client, real_server.base_url)
    started = time.monotonic()
    mark = real_server.mark()
    r = run(program, "verdict", tmp_path, claim="The sky is green.")
    sent = posts(real_server, mark)
    # each choice scored by an echoed completion with log-probs: 2 + 3 choices
    assert sent == [("POST", "/v1/completions", 200)] * 5
    assert r.value["answer"] in ("yes", "no")
    assert r.value["sure"] in ("certainly", "maybe", "not at all")
    assert time.monotonic() - started < 60  # max_tokens 1: a scoring request ends at once


@pytest.mark.filterwarnings("ignore::UserWarning")  # litellm on per-token vectors
def test_a_route_by_embedding(real_server: Server, embedding_server: Server, project: Path,
                              client: str, tmp_path: Path):
    # the route embeds its demos and the question through /v1/embeddings of the second
    # server. Started from its command line, llama-cpp-python's server does not pool the
    # vectors of this (generative) model (it has no pooling option): it answers one vector
    # per token, which pflow refuses with a clear error (test_pooled_embeddings.py: pooled)
    program = load(project, client, real_server.base_url, emb_base=embedding_server.base_url)
    b = backend(client, embedding_server.base_url, embeddings=True)
    mark = embedding_server.mark()
    with pytest.raises(ModelError, match="one vector per token"):
        asyncio.run(b.embed(["What is 3 plus 4?"]))
    with pytest.raises(RunFailed, match="one vector per token.*pooling"):
        run(program, "pick", tmp_path, question="What is 3 plus 4?")
    sent = posts(embedding_server, mark)
    assert sent and set(sent) == {("POST", "/v1/embeddings", 200)}  # answered, not retried
    assert len(sent) == 2


def test_a_decomposer_on_v1_completions(real_server: Server, project: Path, client: str,
                                        tmp_path: Path):
    program = load(project, client, real_server.base_url)
    mark = real_server.mark()
    try:
        r = run(program, "steps", tmp_path, question="Say something about dogs.")
    except RunFailed as exc:  # the model may write a step the decomposer cannot parse
        assert "decompos" in str(exc).lower() or "step" in str(exc).lower()
    else:
        assert isinstance(r.value, str)
    sent = posts(real_server, mark)
    assert sent and sent[0] == ("POST", "/v1/completions", 200)  # the decomposer's prompt


# ---------------------------------------------------------------- failures


def test_a_wrong_port_fails_quickly_with_a_clear_error(project: Path, client: str, tmp_path: Path):
    program = load(project, client, f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(RunFailed) as info:
        run(program, "say", tmp_path, x="x")
    assert "connect" in str(info.value).lower() or "refused" in str(info.value).lower()


def test_an_over_long_prompt_is_a_clear_error_not_retried(real_server: Server, project: Path,
                                                          client: str, tmp_path: Path):
    program = load(project, client, real_server.base_url)
    mark = real_server.mark()
    with pytest.raises(RunFailed) as info:
        run(program, "say", tmp_path, x="word " * 2500)
    assert posts(real_server, mark) == [
        ("POST", "/v1/chat/completions", 400)]
    message = str(info.value)
    assert "context" in message.lower() and "400" in message
    assert "1 attempt" in message


def test_a_server_killed_mid_stream_is_an_error(tmp_path: Path, client: str):
    with start_server(tmp_path) as server:
        b = backend(client, server.base_url)

        async def go() -> list[str]:
            pieces: list[str] = []
            stream = b.stream([Message("user", "Write a long story.")], None,
                              GenParams(max_tokens=400, temperature=0.0))
            async for event in stream:
                pieces.append(event.text)
                if len(pieces) == 3:
                    server.kill()
            return pieces

        with pytest.raises(ModelError):
            asyncio.run(go())


def test_the_documented_example_runs(real_server: Server, client: str, tmp_path: Path):
    from corpus_paths import REPO
    from doc_blocks import pflow_blocks

    blocks = [b for b in pflow_blocks(REPO / "docs" / "servers.md") if "prompt say" in b]
    assert len(blocks) == 1
    text = blocks[0].replace("http://127.0.0.1:8000/v1", real_server.base_url)
    if client == "litellm":
        text = text.replace("temperature: 0", 'temperature: 0, client: "litellm"')
    path = tmp_path / "example.pflow"
    path.write_text(text)
    program = pf.load(path)
    assert len(program.warnings) == 1  # nothing known of the server yet: choices not enforced
    mark = real_server.mark()
    assert isinstance(run(program, "say", tmp_path, x="rain").value, str)
    # the run probed and cached the server's profile: pflow check now knows it scores
    assert pf.load(path).warnings == []
    assert run(program, "verdict", tmp_path, claim="Fish can fly.").value["answer"] in ("yes", "no")
    assert real_server.requests_since(mark)[-2:] == [("POST", "/v1/completions", 200)] * 2
