"""One path for typed answers: prompts and route experts ask, validate, re-ask and
account the same way (runtime/asking.py, runtime/ledger.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

PROGRAM = '''
model default = "echo"
type V { label: "a" | "b", n: int }

prompt record(x: str) -> V = "judge {{ x }}"
prompt numbers(x: str) -> list[int] = "count {{ x }}"
route count(q: str) -> list[int] {
  by rule
  expert only { instruction "Count." }
}
'''


class Hosted(ScriptedBackend):
    """A scripted model that takes a JSON schema natively (only with an object at the root
    when ``object_only``) and charges 0.25 per call."""

    def __init__(self, replies: list[str], *, object_only: bool) -> None:
        super().__init__("hosted", replies)
        self.capabilities = replace(self.capabilities, json_schema=True,
                                    json_schema_object_only=object_only)

    async def chat(self, messages, params):
        reply = await super().chat(messages, params)
        reply.usage.cost = 0.25
        return reply


@pytest.fixture
def program(tmp_path: Path):
    (tmp_path / "p.pflow").write_text(PROGRAM)
    return pf.load(tmp_path / "p.pflow")


def run(program, tmp_path: Path, handler: str, backend: ScriptedBackend, **inputs):
    config = RunConfig(backends={"default": backend}, cache=CacheMode.OFF, write_trace=False,
                       trace_dir=tmp_path / "traces")
    return program.run(handler, config=config, **inputs)


@pytest.mark.parametrize("handler, arg", [("numbers", "x"), ("count", "q")])
@pytest.mark.parametrize("object_only", [True, False])
def test_native_schema_follows_the_backend_capabilities(program, tmp_path, handler, arg,
                                                         object_only):
    """A list is asked for natively only where the backend takes any root; prompts and
    route experts follow the same rule."""
    model = Hosted(["[1, 2]"], object_only=object_only)
    assert run(program, tmp_path, handler, model, **{arg: "two"}).value == [1, 2]
    call = model.calls[0]
    if object_only:
        assert call.params.json_schema is None
        assert "JSON Schema" in call.messages[0].content  # asked by instructions
    else:
        assert call.params.json_schema == {"type": "array", "items": {"type": "integer"}}
        assert all("JSON Schema" not in m.content for m in call.messages)


def test_an_object_root_is_native_on_hosted_models(program, tmp_path):
    model = Hosted(['{"label": "a", "n": 1}'], object_only=True)
    assert run(program, tmp_path, "record", model, x="y").value == {"label": "a", "n": 1}
    assert model.calls[0].params.json_schema is not None


@pytest.mark.parametrize("handler, arg, kind", [("numbers", "x", "prompt"),
                                                ("count", "q", "expert")])
def test_every_attempt_is_accounted(program, tmp_path, handler, arg, kind):
    """The step of a re-asked answer sums the usage and cost of every attempt."""
    model = Hosted(["no list here", "[3]"], object_only=True)
    r = run(program, tmp_path, handler, model, **{arg: "three"})
    assert r.value == [3]
    step = next(s for s in r.trace.steps if s.kind == kind)
    assert (step.attempts, step.calls, step.cache_hits, step.cost) == (2, 2, 0, 0.5)
    assert "not valid" in model.calls[1].messages[-1].content
    assert step.messages is not None and step.messages[-1]["content"] == model.calls[1].messages[-1].content
    assert (r.trace.totals.calls, r.trace.totals.cost) == (2, 0.5)


def test_an_expert_that_never_answers_fails_like_a_prompt(program, tmp_path):
    model = Hosted(["x", "y", "z"], object_only=True)
    with pytest.raises(RunFailed) as info:
        run(program, tmp_path, "count", model, q="?")
    assert ("route 'count', expert 'only': the reply did not match list[int] after 3 attempts: "
            "the reply is not JSON") in info.value.message
    step = next(s for s in info.value.trace.steps if s.kind == "expert")
    assert (step.status, step.calls, step.cost) == ("failed", 3, 0.75)
