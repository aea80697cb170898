"""Token counts (tiktoken read offline, the embedded model's vocabulary, the
approximation) and cost from litellm's prices."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.estimate import estimate
from promptflow_dsl.models import tokenizers
from promptflow_dsl.models.base import GenParams, Message
from promptflow_dsl.models.tokenizers import ApproxTokenizer, tokenizer_for

TEXT = "Hello world, this is a test."


def _local_available() -> bool:
    from promptflow_dsl.models.local import find_gguf

    gguf = find_gguf()
    return importlib.util.find_spec("llama_cpp") is not None and gguf is not None and gguf.is_file()


needs_local = pytest.mark.skipif(not _local_available(),
                                 reason="llama-cpp-python or the SmolLM2 gguf is missing")


# ------------------------------------------------------------------ tiktoken

def _tiktoken(model: str):
    tok = tokenizer_for(model)
    if not tok.exact:
        pytest.skip(f"tiktoken's encoding is not on this machine: {tok.note}")
    return tok


def test_openai_models_count_with_their_tiktoken_encoding():
    tok = _tiktoken("openai/gpt-4o-mini")
    assert tok.name == "tiktoken o200k_base"
    assert tok.count(TEXT) == 8  # Hello| world|,| this| is| a| test|.
    # OpenAI's rule: 3 per message + role + content, 3 to prime the reply
    assert tok.count_chat([Message("user", TEXT)]) == 3 + 3 + 1 + 8
    assert tokenizer_for("gpt-4o").name == "tiktoken o200k_base"
    assert _tiktoken("gpt-3.5-turbo").name == "tiktoken cl100k_base"
    assert tokenizer_for("o3-mini").name == "tiktoken o200k_base"


def test_other_models_are_approximated():
    for model in ("anthropic/claude-3-5-sonnet-20240620", "ollama/llama3", "openai/my-own-model",
                  "echo"):
        tok = tokenizer_for(model)
        assert not tok.exact and tok.name == "approximation (4 characters per token)"
    approx = ApproxTokenizer()
    assert approx.count("abcdefghi") == 3  # 9 characters, rounded up
    assert approx.count_chat([Message("user", "abcdefgh")]) == 3 + 4 + 2


def test_tiktoken_never_downloads(monkeypatch, tmp_path):
    """Without the encoding file on disk the approximation is used, and nothing is
    fetched: tiktoken's reader is never asked."""
    import tiktoken.load

    def no_network(*args, **kwargs):
        raise AssertionError("tiktoken tried to read a file from the network")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tokenizers, "_tiktoken_dirs", lambda: [tmp_path])
    monkeypatch.setattr(tokenizers, "_CACHE", {})
    tok = tokenizer_for("openai/gpt-4o")
    assert not tok.exact
    assert "o200k_base" in tok.note and "not on this machine" in tok.note


def test_a_cached_file_with_the_wrong_hash_is_not_used(monkeypatch, tmp_path):
    import hashlib

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"not an encoding")
    monkeypatch.setattr(tokenizers, "_tiktoken_dirs", lambda: [tmp_path])
    assert tokenizers._tiktoken_file("cl100k_base") is None


# ------------------------------------------------------------------ the embedded model

@needs_local
def test_smollm2_counts_with_its_own_vocabulary():
    tok = tokenizer_for("local/smollm2")
    assert tok.exact and "smollm2" in tok.name
    assert tok.count(TEXT) == 8


@needs_local
def test_a_prompt_s_input_tokens_are_what_the_embedded_model_reports(tmp_path):
    """The estimate renders the messages with the row's values and counts them as the
    backend does: equal to the prompt tokens of the real call."""
    p = pf.loads('model default = "local/smollm2" { max_tokens: 1 }\n'
                 'prompt greet(name: str) -> str {\n'
                 '  system "You greet people."\n'
                 '  user "Say hello to {{ name }}, who likes {{ name }}."\n'
                 '}\n', name="g.pflow", base_dir=tmp_path)
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"name": "Ada Lovelace"}) + "\n", encoding="utf-8")
    t = estimate(p, "greet", data).usage.total
    assert (t.calls_min, t.calls_max, t.output_max) == (1, 1, 1)

    from promptflow_dsl.models.local import LocalBackend

    async def real() -> int:
        backend = LocalBackend()
        try:
            messages = [Message("system", "You greet people."),
                        Message("user", "Say hello to Ada Lovelace, who likes Ada Lovelace.")]
            reply = await backend.chat(messages, GenParams(max_tokens=1, temperature=0.0))
            return reply.usage.prompt_tokens
        finally:
            await backend.aclose()

    assert t.input_min == t.input_max == asyncio.run(real())


# ------------------------------------------------------------------ cost

def test_cost_is_litellm_s_price_per_token_times_the_tokens(tmp_path):
    from promptflow_dsl.models.remote import load_litellm

    p = pf.loads('model default = "openai/gpt-4o-mini" { max_tokens: 50 }\n'
                 'type V { label: "good" | "bad" }\n'
                 'prompt rate(review: str) -> V = "Rate this review: {{ review }}"\n',
                 name="c.pflow", base_dir=tmp_path)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"review": r}) + "\n"
                            for r in ("Great phone.", "It broke on day two, and support never "
                                                      "called back.")), encoding="utf-8")
    e = estimate(p, "rate", data)
    info = load_litellm().model_cost["gpt-4o-mini"]
    pin, pout = info["input_cost_per_token"], info["output_cost_per_token"]
    t = e.usage.total
    assert (t.calls_min, t.calls_max) == (2, 6)
    assert t.output_max == 6 * 50
    assert e.usage.cost is not None
    assert e.usage.cost.low == pytest.approx(t.input_min * pin + t.output_typical * pout)
    assert e.usage.cost.high == pytest.approx(t.input_max * pin + t.output_max * pout)
    got = e.to_json()
    assert got["models"]["openai/gpt-4o-mini"]["price"] == {"input_per_token": pin,
                                                            "output_per_token": pout}
    assert got["total"]["cost"]["low"] == pytest.approx(e.usage.cost.low)


def test_built_in_models_cost_nothing_and_unknown_prices_are_unknown(tmp_path):
    p = pf.loads('model default = "echo"\nmodel other = "anthropic/claude-made-up-1"\n'
                 'prompt a(x: str) -> str = "{{ x }}"\n'
                 'prompt b(x: str) -> str {\n  model other\n  user "{{ x }}"\n}\n'
                 'flow both(x: str) -> str {\n  r = a(x=b(x=x))\n  return r\n}\n',
                 name="u.pflow", base_dir=tmp_path)
    e = estimate(p, "both")
    by_handler = {ln.handler: ln for ln in e.lines()}
    assert by_handler["a"].cost() is not None and by_handler["a"].cost().high == 0
    assert by_handler["b"].cost() is None
    assert e.usage.cost is None
    text = e.render()
    assert "unknown" in text and "anthropic/claude-made-up-1: no price" in text


def test_a_local_estimate_imports_no_litellm(tmp_path):
    src = tmp_path / "l.pflow"
    src.write_text('prompt p(x: str) -> str = "{{ x }}"\n', encoding="utf-8")
    code = ("import sys\nfrom promptflow_dsl.cli import main\n"
            f"assert main(['estimate', {str(src)!r}, 'p']) == 0\n"
            "print('litellm' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
