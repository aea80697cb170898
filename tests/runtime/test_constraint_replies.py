"""Field constraints at run time: replies that break one are re-asked with the reason
(prompts, constrained text, sketch holes), the schema sent carries them, and values
at handler edges are checked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import InputError, RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

PROGRAM = '''
model default = "echo"
type S { headline: str(max_length=12), stars: int(min=1, max=5) }
prompt summarize(review: str(min_length=1)) -> S = "Summarize: {{ review }}"
prompt title(review: str) -> str(max_length=10) = "A title for: {{ review }}"
sketch rate(review: str) -> {stars: int(min=1, max=5), word: str(pattern=r"[a-z]+")} {
  template """
    Review: {{ review }}
    Stars: [stars: int]
    One word: [word stop="\\n"]
  """
}
tool shout(text: str) -> str(max_length=3) = python "tools:shout"
'''


@pytest.fixture
def program(tmp_path: Path):
    (tmp_path / "tools.py").write_text("def shout(text):\n    return text.upper()\n")
    (tmp_path / "p.pflow").write_text(PROGRAM)
    return pf.load(tmp_path / "p.pflow")


def run(program, tmp_path: Path, handler: str, backend: ScriptedBackend | None = None, **inputs):
    backends = {"default": backend} if backend is not None else {}
    config = RunConfig(backends=backends, cache=CacheMode.OFF, write_trace=False,
                       trace_dir=tmp_path / "traces")
    return program.run(handler, config=config, **inputs)


def user_turns(call) -> list[str]:
    return [m.content for m in call.messages if m.role == "user"]


def test_a_reply_that_breaks_a_constraint_is_re_asked_with_the_reason(program, tmp_path):
    model = ScriptedBackend("default", ['{"headline": "A very long headline", "stars": 4}',
                                        '{"headline": "Short", "stars": 9}',
                                        '{"headline": "Short", "stars": 4}'])
    assert run(program, tmp_path, "summarize", model, review="ok").value == \
        {"headline": "Short", "stars": 4}
    assert "$.headline: at most 12 characters, got 20" in user_turns(model.calls[1])[-1]
    assert "$.stars: at most 5, got 9" in user_turns(model.calls[2])[-1]
    system = model.calls[0].messages[0].content  # the schema in the system message
    assert '"maxLength": 12' in system and '"maximum": 5' in system


def test_the_native_schema_carries_the_constraints(program, tmp_path):
    model = ScriptedBackend("default", ['{"headline": "Short", "stars": 4}'])
    model.capabilities = replace(model.capabilities, json_schema=True)
    run(program, tmp_path, "summarize", model, review="ok")
    props = model.calls[0].params.json_schema["properties"]
    assert props == {"headline": {"type": "string", "maxLength": 12},
                     "stars": {"type": "integer", "minimum": 1, "maximum": 5}}


def test_a_constrained_text_reply_is_validated(program, tmp_path):
    model = ScriptedBackend("default", ["A title that is too long", "Short one"])
    assert run(program, tmp_path, "title", model, review="x").value == "Short one"
    assert user_turns(model.calls[1])[-1].startswith(
        "That reply is not valid: at most 10 characters, got 24.")


def test_a_sketch_hole_that_breaks_its_field_constraint_is_re_asked(program, tmp_path):
    model = ScriptedBackend("default", ["7", "3", "Two words", "great"])
    result = run(program, tmp_path, "rate", model, review="fine")
    assert result.value == {"stars": 3, "word": "great"}
    assert len(model.calls) == 4
    assert "at most 5, got 7" in user_turns(model.calls[1])[-1]
    assert "does not match the pattern" in user_turns(model.calls[3])[-1]


def test_inputs_and_tool_results_are_checked_at_the_handler_edge(program, tmp_path):
    with pytest.raises(InputError, match="at least 1 character, got 0"):
        run(program, tmp_path, "summarize", ScriptedBackend("default", []), review="")
    assert run(program, tmp_path, "shout", text="abc").value == "ABC"
    with pytest.raises(RunFailed, match="at most 3 characters, got 4"):
        run(program, tmp_path, "shout", text="abcd")
