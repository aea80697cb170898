"""The variable-level sketch decoders ``var(n)`` and ``beam_var(n)`` (``beam(n)`` is
``beam_var(n)``): exact, against a scripted model whose completions and
log-probabilities are given in a table, so every chosen value is the one a hand
computation gives; then on the embedded model for the machinery."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.models.base import Capabilities, GenParams, Message, Reply, Scored, Usage
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode

ALPHA = 0.7

# Claim: [a] (a free hole ended by "\n"), then the literal "\nSo: ", then a choice, then ".".
SKETCH = '''
model default = "local/smollm2"

sketch s() -> {{a: str, b: "x" | "y"}} {{
  decoder {decoder}
  template "Q: [a stop=\\"\\\\n\\"]\\nSo: [b in {{\\"x\\", \\"y\\"}}]."
}}
'''

# (prefix, continuation) -> (log-probability, tokens)
TABLE = {
    ("Q: ", "cat"): (-1.0, 1), ("Q: ", "dog"): (-2.0, 1),
    ("Q: ", "cat\nSo: "): (-5.0, 3), ("Q: ", "dog\nSo: "): (-2.5, 3),
    ("Q: dog\nSo: ", "x"): (-1.0, 1), ("Q: dog\nSo: ", "y"): (-0.5, 1),
    ("Q: dog\nSo: ", "x."): (-1.2, 2), ("Q: dog\nSo: ", "y."): (-3.5, 2),
    ("Q: cat\nSo: ", "x"): (-0.1, 1), ("Q: cat\nSo: ", "y"): (-3.0, 1),
    ("Q: cat\nSo: ", "x."): (-0.2, 2), ("Q: cat\nSo: ", "y."): (-3.1, 2),
}


class TableModel:
    """Completions from ``complete(prefix, params)``; scores from :data:`TABLE`."""

    def __init__(self, complete) -> None:
        self.model_id = "table"
        self.capabilities = Capabilities(chat=True, completion=True, prefill=False, streaming=False,
                                         logprobs=True, json_schema=False, grammar=False,
                                         embeddings=False)
        self._complete = complete
        self.completions: list[tuple[str, GenParams]] = []
        self.scored: list[tuple[str, list[str]]] = []

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        raise AssertionError("no chat request expected")

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        self.completions.append((prefix, params))
        return Reply(self._complete(prefix, params), self.model_id, Usage())

    def stream(self, messages, prefix, params):  # pragma: no cover - not used
        raise AssertionError("no stream expected")

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        self.scored.append((prefix, list(continuations)))
        return [Scored(c, *TABLE[(prefix, c)]) for c in continuations]

    async def embed(self, texts):  # pragma: no cover - not used
        raise AssertionError("no embeddings expected")

    async def aclose(self) -> None:
        return None


def run(decoder: str, complete, tmp_path: Path):
    program = pf.loads(textwrap.dedent(SKETCH.format(decoder=decoder)), base_dir=tmp_path)
    model = TableModel(complete)
    cfg = RunConfig(cache=CacheMode.OFF, write_trace=False, backends={"default": model})
    return program.run("s", config=cfg), model


def beam_events(result):
    return [e for e in result.trace.steps[0].events if e["type"] == "beam"]


def norm(lp: float, tokens: int) -> float:
    return lp / tokens ** ALPHA if tokens else 0.0


def test_var_scores_the_template_after_each_value(tmp_path):
    # var(2): both candidates sampled (temperature 1.0, seeds 1 and 2)
    r, model = run("var(2)", lambda prefix, p: " cat" if p.seed == 1 else " dog", tmp_path)
    # hand computation: a candidate's score is (value + following template) / tokens ** 0.7
    after_a = {"cat": norm(-5.0, 3), "dog": norm(-2.5, 3)}  # dog -1.16 beats cat -2.32
    final = {("dog", "x"): norm(-2.5 - 1.2, 5), ("dog", "y"): norm(-2.5 - 3.5, 5),
             ("cat", "x"): norm(-5.0 - 0.2, 5), ("cat", "y"): norm(-5.0 - 3.1, 5)}
    assert r.value == {"a": "dog", "b": "x"}
    # greedy on the value alone would take "cat" (-1.0 > -2.0): the template decided
    first, second, best = beam_events(r)
    assert [(c["value"], round(c["score"], 6), c["kept"]) for c in first["candidates"]] == [
        ("dog", round(after_a["dog"], 6), True), ("cat", round(after_a["cat"], 6), True)]
    ranked = sorted(final.items(), key=lambda kv: -kv[1])
    assert [(c["value"], round(c["score"], 6)) for c in second["candidates"]] == [
        (b, round(s, 6)) for (_, b), s in ranked]
    assert [c["kept"] for c in second["candidates"]] == [True, True, False, False]
    assert best["score"] == pytest.approx(final[("dog", "x")])
    assert best["logprob"] == pytest.approx(-3.7)
    assert sorted((p.temperature, p.seed) for _, p in model.completions) == [(1.0, 1), (1.0, 2)]
    assert model.completions[0][0] == "Q:"  # the trailing space is held back
    # one score request per hypothesis and hole: each value alone and with its chunk
    assert model.scored[0] == ("Q: ", ["cat", "dog", "cat\nSo: ", "dog\nSo: "]) or \
        model.scored[0] == ("Q: ", ["dog", "cat", "dog\nSo: ", "cat\nSo: "])
    assert len(model.scored) == 3


def test_beam_var_normalises_values_and_template_apart(tmp_path):
    # beam_var(2): one greedy candidate and one sampled at 0.7 (seed 1)
    r, model = run("beam_var(2)", lambda prefix, p: " cat" if not p.temperature else " dog", tmp_path)
    after_a = {"cat": norm(-1.0, 1) + norm(-4.0, 2), "dog": norm(-2.0, 1) + norm(-0.5, 2)}
    final = {("dog", "x"): norm(-3.0, 2) + norm(-0.5 - 0.2, 3),
             ("dog", "y"): norm(-2.5, 2) + norm(-0.5 - 3.0, 3),
             ("cat", "x"): norm(-1.1, 2) + norm(-4.0 - 0.1, 3),
             ("cat", "y"): norm(-4.0, 2) + norm(-4.0 - 0.1, 3)}
    assert r.value == {"a": "dog", "b": "x"}
    first, second, best = beam_events(r)
    assert [(c["value"], round(c["score"], 6)) for c in first["candidates"]] == [
        ("dog", round(after_a["dog"], 6)), ("cat", round(after_a["cat"], 6))]
    ranked = sorted(final.items(), key=lambda kv: -kv[1])
    assert [round(c["score"], 6) for c in second["candidates"]] == [round(s, 6) for _, s in ranked]
    assert best["score"] == pytest.approx(final[("dog", "x")])
    assert sorted((p.temperature or 0.0, p.seed) for _, p in model.completions) == [(0.0, None), (0.7, 1)]
    hole_b = [e for e in r.trace.steps[0].events if e["type"] == "hole" and e["hole"] == "b"][0]
    assert hole_b["scores"] == {"x": pytest.approx(final[("dog", "x")]),
                                "y": pytest.approx(final[("dog", "y")])}


def test_beam_is_beam_var(tmp_path):
    def complete(prefix, p):
        return " cat" if not p.temperature else " dog"

    a, _ = run("beam(2)", complete, tmp_path)
    b, _ = run("beam_var(2)", complete, tmp_path)
    assert a.value == b.value
    assert [e["candidates"] for e in beam_events(a)[:2]] == [e["candidates"] for e in beam_events(b)[:2]]
    assert a.trace.steps[0].extra["decoder"] == "beam(2)"


def test_width_one_keeps_the_best_hypothesis_only(tmp_path):
    r, model = run("var(1)", lambda prefix, p: " cat", tmp_path)
    # one candidate "cat"; then x beats y after it
    assert r.value == {"a": "cat", "b": "x"}
    assert [sum(c["kept"] for c in e["candidates"]) for e in beam_events(r)[:2]] == [1, 1]


def test_var_without_width_is_var_2(tmp_path):
    r, _ = run("var", lambda prefix, p: " cat" if p.seed == 1 else " dog", tmp_path)
    assert r.trace.steps[0].extra["decoder"] == "var(2)"
    assert r.value == {"a": "dog", "b": "x"}


def test_var_falls_back_to_sequential_without_logprobs(tmp_path):
    from promptflow_dsl.models.scripted import ScriptedBackend

    program = pf.loads(textwrap.dedent(SKETCH.format(decoder="var(3)")), base_dir=tmp_path)
    cfg = RunConfig(cache=CacheMode.OFF, write_trace=False,
                    backends={"default": ScriptedBackend("default", ["cat", "y"])})
    r = program.run("s", config=cfg)
    assert r.value == {"a": "cat", "b": "y"}
    decoder = [e for e in r.trace.steps[0].events if e["type"] == "decoder"][0]
    assert decoder["summary"] == ("var(3) -> sequential: var(3) needs token log-probabilities, "
                                  "which model 'local/smollm2' lacks")


def test_checker_warns_with_the_declared_decoder(tmp_path):
    text = SKETCH.format(decoder="beam_var(3)").replace('"local/smollm2"', '"openai/gpt-4o-mini"')
    program = pf.loads(textwrap.dedent(text), base_dir=tmp_path)
    warnings = [d.message for d in program.diagnostics if not d.is_error]
    assert ("beam_var(3) needs token log-probabilities, which model 'openai/gpt-4o-mini' does not "
            "give: the runtime falls back to sequential decoding") in warnings


# ---------------------------------------------------------------- the embedded model

def _local_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from promptflow_dsl.models.local import find_gguf

    path = find_gguf()
    return path is not None and path.is_file()


local = pytest.mark.skipif(not _local_available(), reason="llama-cpp-python or the SmolLM2 gguf is missing")

JUDGE = '''
model default = "local/smollm2"

sketch judge(claim: str) -> {reasoning: str, verdict: "true" | "false"} {
  decoder DECODER
  template """
    Claim: {{ claim }}
    Let's think step by step. [reasoning stop="\\n" max_tokens=12]
    Therefore the claim is [verdict in {"true", "false"}].
  """
}
'''


@local
@pytest.mark.parametrize("decoder", ["var(2)", "beam_var(2)"])
def test_search_decoders_on_the_embedded_model(decoder, tmp_path):
    program = pf.loads(textwrap.dedent(JUDGE.replace("DECODER", decoder)), base_dir=tmp_path)
    r = program.run("judge", config=RunConfig(cache=CacheMode.OFF, write_trace=False),
                    claim="The sun is a star.")
    assert r.value["verdict"] in ("true", "false") and r.value["reasoning"]
    events = r.trace.steps[0].events
    assert [e for e in events if e["type"] == "decoder"][0]["used"] == decoder
    first, second, best = [e for e in events if e["type"] == "beam"]
    assert first["hole"] == "reasoning" and 1 <= len(first["candidates"]) <= 2
    assert len(second["candidates"]) == 2 * sum(c["kept"] for c in first["candidates"])
    top = second["candidates"][0]
    assert top["kept"] and r.value["verdict"] == top["value"]
    assert best["score"] == pytest.approx(top["score"]) and best["logprob"] <= 0
