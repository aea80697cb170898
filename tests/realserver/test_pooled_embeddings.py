"""A route by embedding against a real server that pools: llama-cpp-python's server with
``--embedding true`` and mean pooling (``pooled_server.py``), through both clients.

The experts delegate to tools (no chat model is needed); the route's choice and the
distances it records must be what cosine distance to each expert's centroid (the mean of
its unit demo vectors) gives on the vectors the server returns for the same texts.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clients import CLIENTS, backend, run_config
from llama_server import Server

import promptflow_dsl as pf

DEMOS = {
    "maths": ["What is 17 plus 25?", "What is 9 times 8?", "Compute 144 divided by 12."],
    "places": ["What is the capital of France?", "Which city is the capital of Japan?",
               "Name the capital of Italy."],
    "animals": ["Do cats like milk?", "How fast can a horse run?", "What do rabbits eat?"],
}
QUESTIONS = ["What is 3 plus 4?", "What is the capital of Spain?", "What do dogs eat?",
             "Multiply 6 by 7.", "Is Berlin the capital of Germany?"]

PROGRAM = '''
model emb = "openai/smollm2-embed" embed {{ api_base: "{base}", num_retries: 1{client} }}
tool same(question: str) -> str = python "tools:same"
route pick(question: str) -> str {{
  by embedding
  embed emb
  expert maths -> same {{ demos "maths.jsonl" }}
  expert places -> same {{ demos "places.jsonl" }}
  expert animals -> same {{ demos "animals.jsonl" }}
}}
'''


def raw_vectors(server: Server, texts: list[str]) -> np.ndarray:
    """The server's vectors for ``texts``, asked without pflow."""
    body = json.dumps({"model": "x", "input": texts}).encode()
    request = urllib.request.Request(server.base_url + "/embeddings", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        data = json.loads(r.read())["data"]
    return np.asarray([d["embedding"] for d in sorted(data, key=lambda d: d["index"])], float)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def expected(server: Server, question: str) -> dict[str, float]:
    """Cosine distance from the question to each expert's centroid."""
    q = unit(raw_vectors(server, [question])[0])
    out = {}
    for name, demos in DEMOS.items():
        centroid = unit(raw_vectors(server, demos)).mean(axis=0)
        out[name] = 1.0 - float(q @ centroid) / float(np.linalg.norm(centroid))
    return out


def test_the_server_pools(pooled_server: Server, client: str):
    b = backend(client, pooled_server.base_url, model="openai/smollm2-embed", embeddings=True)
    vectors = asyncio.run(b.embed(["a cat", "a dog"]))
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) == 576
    assert np.allclose(vectors, raw_vectors(pooled_server, ["a cat", "a dog"]), atol=1e-5)


def test_a_route_by_embedding_follows_cosine(pooled_server: Server, client: str, tmp_path: Path):
    (tmp_path / "tools.py").write_text("def same(question):\n    return question\n")
    for name, demos in DEMOS.items():
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"input": d, "output": "x"}) + "\n" for d in demos))
    (tmp_path / "p.pflow").write_text(PROGRAM.format(base=pooled_server.base_url,
                                                     client=CLIENTS[client]))
    program = pf.load(tmp_path / "p.pflow")
    config = run_config(tmp_path, write_trace=False)
    chosen: list[str] = []
    for question in QUESTIONS:
        result = program.run("pick", config=config, question=question)
        assert result.value == question
        [event] = [e for s in result.trace.steps for e in s.events if e.get("type") == "route"]
        got: dict[str, Any] = event["distances"]
        want = expected(pooled_server, question)
        assert set(got) == set(want)
        for name in want:
            assert got[name] == pytest.approx(want[name], abs=1e-4), (question, name)
        assert event["expert"] == min(want, key=want.__getitem__)
        chosen.append(event["expert"])
    # the routing is not degenerate: the questions do not all go to one expert
    assert len(set(chosen)) > 1, chosen
