"""A model declared with ``embed`` is an embedder because of its declaration, whatever its
id (``bge-m3``, ``all-MiniLM-L6-v2``), on both client paths; a server that answers one
vector per token is a located run error, not an internal one; one backend per declaration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl import cli
from promptflow_dsl.kinds.route import prepare as prepare_mod
from promptflow_dsl.kinds.route.cache import clear_memory
from promptflow_dsl.models.registry import ModelRegistry, RegistrySettings
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

ROUTE = '''
model default = "echo"
model emb = "{model_id}" embed {{ api_base: "{base}", client: "{client}", num_retries: 0 }}
route answer(question: str) -> str {{
  by embedding
  embed emb
  expert arithmetic {{
    instruction "Compute the result."
    demos "math.jsonl"
  }}
  expert capitals {{
    instruction "Name the capital city."
    demos "caps.jsonl"
  }}
}}
'''


@pytest.fixture(autouse=True)
def _fresh_memory(monkeypatch, tmp_path):
    clear_memory()
    prepare_mod._assignments.clear()
    monkeypatch.setenv("PFLOW_EMBED_CACHE_DIR", str(tmp_path / "embeddings"))
    yield
    clear_memory()
    prepare_mod._assignments.clear()


def project(tmp_path: Path, base: str, model_id: str, client: str) -> Path:
    (tmp_path / "pflow.toml").write_text("")
    for name, rows in (("math.jsonl", ["What is 1 plus 2?", "What is 3 times 4?"]),
                       ("caps.jsonl", ["Capital of France?", "Capital of Peru?"])):
        (tmp_path / name).write_text("".join(json.dumps({"input": r, "output": "x"}) + "\n"
                                             for r in rows))
    path = tmp_path / "p.pflow"
    path.write_text(ROUTE.format(model_id=model_id, base=base, client=client))
    return path


@pytest.mark.parametrize("client", ["http", "litellm"])
@pytest.mark.parametrize("model_id", ["openai/bge-m3", "openai/all-MiniLM-L6-v2"])
def test_a_declared_embedder_embeds_whatever_its_id(tmp_path, fake_openai, client, model_id):
    path = project(tmp_path, fake_openai.base_url, model_id, client)
    r = pf.load(path).run("answer", config=RunConfig(cache=CacheMode.OFF, write_trace=False),
                          question="What is 2 plus 2?")
    assert isinstance(r.value, str)
    posts = [q for q in fake_openai.requests if q["method"] == "POST"]
    assert posts and all(q["path"].endswith("/embeddings") for q in posts)
    assert posts[0]["body"]["model"] == model_id.split("/", 1)[1]


@pytest.mark.parametrize("client", ["http", "litellm"])
def test_one_vector_per_token_is_a_located_run_error(tmp_path, fake_openai, client, capsys):
    fake_openai.token_embeddings = True
    path = project(tmp_path, fake_openai.base_url, "openai/bge-m3", client)
    with pytest.raises(RunFailed) as info:
        pf.load(path).run("answer", config=RunConfig(cache=CacheMode.OFF, write_trace=False),
                          question="What is 2 plus 2?")
    assert "one vector per token" in str(info.value)
    code = cli.main(["run", str(path), "answer", "-i", "question=What is 2 plus 2?",
                     "--cache-dir", str(tmp_path / "cache"), "--no-trace"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "p.pflow:" in err and "one vector per token" in err and "Traceback" not in err


class _Decl:
    def __init__(self, model_id: str, params: dict, embed: bool = False) -> None:
        self.model_id = model_id
        self.params = params
        self.embed = embed


def test_one_backend_per_declaration():
    base = "http://127.0.0.1:9/v1"
    declared = {"m": {
        "a": _Decl("openai/x", {"api_base": base, "timeout": 5}),
        "b": _Decl("openai/x", {"api_base": base, "timeout": 50, "num_retries": 0}),
        "c": _Decl("openai/x", {"api_base": base, "client": "litellm"}),
        "d": _Decl("openai/x", {"api_base": base, "timeout": 5}),
        "e": _Decl("openai/x", {"api_base": base, "json_schema": True}),
        "f": _Decl("openai/x", {"api_base": base}, embed=True),
    }}
    registry = ModelRegistry(declared, RegistrySettings())
    backends = {n: registry.resolve("m", n)[1] for n in "abcdef"}
    assert backends["a"] is backends["d"]  # the same settings share one backend
    assert len({id(b) for b in backends.values()}) == 5
    assert backends["a"].timeout == 5 and backends["b"].timeout == 50
    assert backends["b"].max_attempts == 1
    assert type(backends["c"]).__name__ == "LiteLLMBackend"
    assert type(backends["a"]).__name__ == "OpenAIHTTPBackend"
    assert backends["e"].capabilities.json_schema and not backends["a"].capabilities.json_schema
    assert backends["f"].capabilities.embeddings and not backends["a"].capabilities.embeddings
