"""Completion prompts and context windows on the embedded model (``local/smollm2``):
the text goes to ``create_completion`` raw; a model's ``n_ctx`` sizes the context
(one instance per size); a prompt that does not fit is a located run error naming the
handler, the prompt's tokens and the window on every path (chat, completion, hooks,
the command line: exit 1, never 70)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl import cli
from promptflow_dsl.models.base import GenParams
from promptflow_dsl.models.context import ContextOverflow
from promptflow_dsl.models.local import find_gguf, shared_backend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

_gguf = find_gguf()
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or _gguf is None or not _gguf.is_file(),
    reason="llama-cpp-python or the SmolLM2 gguf is missing (pip install 'promptflow-dsl[local]')")

SENTENCE = "The quick brown fox jumps over the lazy dog. "


def program(n_ctx: int | None, filler: int = 0) -> pf.Program:
    ctx = f" {{ n_ctx: {n_ctx} }}" if n_ctx is not None else ""
    text = SENTENCE * filler
    return pf.loads(f'''
model default = "local/smollm2"{ctx}

hook never {{
  when r"ZZZZ"
  run echo_back(text=text)
  action stop
}}

prompt echo_back(text: str) -> str = "{{{{ text }}}}"

prompt letter(question: str) -> str {{
  completion "Q: What is the first letter of \\"Ada\\"?\\nA: A\\n\\nQ: {{{{ question }}}}\\nA:"
  stop "\\n"
  params {{ max_tokens: 4 }}
}}

prompt long_completion(x: str) -> str {{
  completion """{text}{{{{ x }}}}"""
  params {{ max_tokens: 2 }}
}}

prompt long_chat(x: str) -> str {{
  user """{text}{{{{ x }}}}"""
  params {{ max_tokens: 2 }}
}}

prompt long_hooked(x: str) -> str {{
  user """{text}{{{{ x }}}}"""
  hooks [never]
  params {{ max_tokens: 2 }}
}}

prompt wants_many(x: str) -> str {{
  completion """{text}{{{{ x }}}}"""
  params {{ max_tokens: 200 }}
}}

prompt default_limit(x: str) -> str {{
  completion """{text}{{{{ x }}}}"""
}}
''', name="local.pflow")


def config() -> RunConfig:
    return RunConfig(cache=CacheMode.OFF, write_trace=False)


def test_a_completion_prompt_is_the_raw_completion_of_its_text() -> None:
    p = program(None)
    result = p.run("letter", config=config(), question='What is the first letter of "Bob"?')
    step = next(s for s in result.trace.steps if s.handler == "letter")
    direct = asyncio.run(shared_backend().complete(step.extra["prompt"],
                                                   GenParams(max_tokens=4, stop=("\n",))))
    assert result.value == direct.text.strip()
    assert step.reply == direct.text
    assert step.extra["prompt"].endswith('Q: What is the first letter of "Bob"?\nA:')


def test_one_instance_per_window_size() -> None:
    assert shared_backend() is shared_backend(None) is shared_backend(2048)
    assert shared_backend(4096) is not shared_backend()
    assert shared_backend(4096).n_ctx == 4096 and shared_backend().n_ctx == 2048


@pytest.mark.parametrize("handler", ["long_completion", "long_chat", "long_hooked"])
def test_a_prompt_beyond_n_ctx_is_a_located_run_error(handler: str) -> None:
    p = program(64, filler=10)  # ~110 tokens in a 64-token window
    with pytest.raises(RunFailed) as info:
        p.run(handler, config=config(), x="end")
    message = info.value.message
    assert message.startswith(f"model 'local/smollm2' failed for prompt '{handler}': the prompt (")
    assert "tokens) does not fit the context window of 64 tokens: raise the model's n_ctx " \
           "(now 64), or shorten the prompt" in message
    assert info.value.span is not None and info.value.span.file == "local.pflow"


def test_the_same_prompt_fits_a_larger_n_ctx() -> None:
    assert isinstance(program(512, filler=10).run("long_completion", config=config(),
                                                  x="end").value, str)


def test_an_explicit_max_tokens_beyond_the_window_is_refused_a_default_one_is_cut() -> None:
    p = program(160, filler=10)  # ~110 prompt tokens + 200 > 160
    with pytest.raises(RunFailed) as info:
        p.run("wants_many", config=config(), x="end")
    assert "and max_tokens (200) do not fit the context window of 160 tokens" \
        in info.value.message
    assert "or shorten the prompt or max_tokens" in info.value.message
    result = p.run("default_limit", config=config(), x="end")  # 256 by default: cut to fit
    step = next(s for s in result.trace.steps if s.handler == "default_limit")
    assert step.usage is not None and step.usage.prompt_tokens + step.usage.completion_tokens <= 160


def test_the_backend_refuses_before_evaluating_anything() -> None:
    backend = shared_backend(64)
    with pytest.raises(ContextOverflow) as info:
        asyncio.run(backend.complete(SENTENCE * 10, GenParams(max_tokens=1)))
    assert info.value.window == 64 and info.value.prompt_tokens is not None \
        and info.value.prompt_tokens > 64
    assert not info.value.retryable


def test_n_ctx_sizes_the_window_of_a_long_prompt() -> None:
    """The report: a prompt of ~2,300 tokens failed against 2,048 although the model
    declaration said 4,096."""
    p = program(4096, filler=230)
    result = p.run("long_completion", config=config(), x="end")
    step = next(s for s in result.trace.steps if s.handler == "long_completion")
    assert step.usage is not None and step.usage.prompt_tokens > 2048
    with pytest.raises(RunFailed) as info:
        program(None, filler=230).run("long_completion", config=config(), x="end")
    assert "does not fit the context window of 2,048 tokens" in info.value.message


def test_the_command_line_exits_1_not_70(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "overflow.pflow"
    path.write_text('model default = "local/smollm2" { n_ctx: 32 }\n'
                    'prompt p(x: str) -> str {\n'
                    f'  user "{SENTENCE * 5}{{{{ x }}}}"\n'
                    '}\n', encoding="utf-8")
    code = cli.main(["run", str(path), "p", "--input", "x=go", "--no-cache", "--no-trace"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "overflow.pflow:2:8: error: model 'local/smollm2' failed for prompt 'p': the prompt (" \
        in err
    assert "does not fit the context window of 32 tokens" in err


def test_an_n_ctx_that_is_not_a_window_size_fails_the_call() -> None:
    with pytest.raises(RunFailed) as info:
        program(0).run("letter", config=config(), question="?")
    assert info.value.message == ("model 'local/smollm2' failed for prompt 'letter': n_ctx must be "
                                  "an integer from 16 to 1,048,576 (got 0)")
