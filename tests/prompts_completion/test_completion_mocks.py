"""Completion prompts under scripted models, mocks, `pflow test` and record / replay:
the rendered text is sent raw through ``complete`` (never ``chat``), with the `stop`
clause's strings, and the reply is read under the return type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import promptflow_dsl as pf
from promptflow_dsl.models.base import Capabilities, GenParams, Message, Reply
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

SHOTS = "Q: What is letter 1 of \"Ada\"?\nA: A\n\n\nQ: What are the words in \"a b\"?\nA: [\"a\", \"b\"]\n"

PROGRAM = '''
model default = "local/smollm2"

prompt letter(question: str) -> str {
  completion "{{ shots }}\\n\\nQ: {{ question }}\\nA:"
  shots "shots.txt"
  stop "\\n"
  params { max_tokens: 8 }
}

prompt words(question: str) -> list[str] {
  completion "{{ shots }}\\n\\nQ: {{ question }}\\nA:"
  shots "shots.txt"
  stop ["\\n", "Q:"]
  params { stop: "###" }
}

prompt yes(question: str) -> "yes" | "no" {
  completion "Q: {{ question }}\\nA:"
  retries 3
}

prompt sampled(question: str) -> int {
  completion "Q: {{ question }}\\nA:"
  retries 2
  params { temperature: 0.7 }
}

test "mocked completions" {
  mock model default replies [" B", " [\\"x\\", \\"y\\"]", " yes."]
  expect letter(question="What is letter 1 of \\"Bob\\"?") == "B"
  expect words(question="What are the words in \\"x y\\"?") == ["x", "y"]
  expect yes(question="Is it?") == "yes"
}
'''


class Recording(ScriptedBackend):
    """A scripted backend that remembers which operation each call used."""

    def __init__(self, replies: list[str], caps: Capabilities | None = None) -> None:
        super().__init__("scripted", replies)
        self.ops: list[tuple[str, Any, GenParams]] = []
        if caps is not None:
            self.capabilities = caps  # type: ignore[misc]

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        self.ops.append(("chat", messages, params))
        return await super().chat(messages, params)

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        self.ops.append(("complete", prefix, params))
        return await super().complete(prefix, params)


@pytest.fixture
def program(tmp_path: Path) -> pf.Program:
    (tmp_path / "shots.txt").write_text(SHOTS, encoding="utf-8")
    return pf.loads(PROGRAM, name="c.pflow", base_dir=tmp_path)


def config(backend: Any) -> RunConfig:
    return RunConfig(backends={"default": backend}, cache=CacheMode.OFF, write_trace=False)


def test_the_text_is_sent_raw_through_complete_with_the_stop_strings(program: pf.Program) -> None:
    backend = Recording([" B  "])
    result = program.run("letter", config=config(backend), question='What is letter 1 of "Bob"?')
    assert result.value == "B"  # surrounding whitespace dropped
    [(op, text, params)] = backend.ops
    assert op == "complete"
    # the shots file exactly as written (its trailing newline kept), then "\n\n" and the question
    assert text == SHOTS + '\n\nQ: What is letter 1 of "Bob"?\nA:'
    assert params.stop == ("\n",) and params.max_tokens == 8
    step = next(s for s in result.trace.steps if s.handler == "letter")
    assert step.extra["prompt"] == text and step.reply == " B  "
    assert step.messages is None


def test_stop_clause_and_params_stop_are_both_sent(program: pf.Program) -> None:
    backend = Recording([' ["x", "y"]'])
    result = program.run("words", config=config(backend), question="words?")
    assert result.value == ["x", "y"]
    assert backend.ops[0][2].stop == ("\n", "Q:", "###")
    assert "Reply with" not in backend.ops[0][1]  # no format instructions are added


def test_a_literal_reads_by_its_word(program: pf.Program) -> None:
    assert program.run("yes", config=config(Recording([" No."])), question="?").value == "no"


def test_a_greedy_completion_that_does_not_read_fails_at_once(program: pf.Program) -> None:
    backend = Recording([" maybe", " yes"])
    with pytest.raises(RunFailed) as info:
        program.run("yes", config=config(backend), question="?")
    assert len(backend.ops) == 1  # the same text at temperature 0 would get the same reply
    assert "prompt 'yes': the completion did not read as \"yes\" | \"no\" after 1 attempt" \
        in info.value.message
    assert info.value.span is not None and info.value.span.line == 18


def test_a_sampled_completion_is_sent_again_up_to_retries(program: pf.Program) -> None:
    backend = Recording([" many", " lots", " 7"])
    assert program.run("sampled", config=config(backend), question="?").value == 7
    assert [op for op, _, _ in backend.ops] == ["complete"] * 3
    assert len({t for _, t, _ in backend.ops}) == 1  # the same text each time


def test_a_chat_only_model_given_at_run_time_is_refused(program: pf.Program) -> None:
    backend = Recording([" B"], Capabilities(chat=True, completion=False))
    with pytest.raises(RunFailed) as info:
        program.run("letter", config=config(backend), question="?")
    assert info.value.message == ("prompt 'letter' is a completion prompt, and model 'local/smollm2' "
                                  "cannot complete raw text (it is chat-only)")
    assert not backend.ops


def test_pflow_test_mocks_completion_prompts(program: pf.Program) -> None:
    from promptflow_dsl.testing.runner import run_test

    outcomes = [run_test(program, t) for t in program.tests]
    assert [o.status for o in outcomes] == ["passed"], [o.message for o in outcomes]


def test_the_cache_keys_on_the_text(program: pf.Program, tmp_path: Path) -> None:
    backend = Recording([" B", " C"])
    cfg = RunConfig(backends={"default": backend}, cache=CacheMode.DEFAULT,
                    cache_dir=tmp_path / "cache", write_trace=False)
    assert program.run("letter", config=cfg, question="one").value == "B"
    assert program.run("letter", config=cfg, question="one").value == "B"  # a hit
    assert program.run("letter", config=cfg, question="two").value == "C"
    assert len(backend.ops) == 2
