"""What the real-server tests share: the two HTTP clients (the fast path and
``client: "litellm"``, :data:`CLIENTS`; the ``client`` fixture of conftest.py runs a
test once with each), the program text both server test files run (:data:`PROMPTS`,
with the ``marks.py`` tool it calls), a backend of either client, a handler run without
the response cache, a stream read to its end and the POST requests a server logged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llama_server import Server

from promptflow_dsl.models.base import GenParams, Message, StreamEvent
from promptflow_dsl.models.openai_http import OpenAIHTTPBackend
from promptflow_dsl.models.remote import LiteLLMBackend
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode

CLIENTS = {"fast": "", "litellm": ', client: "litellm"'}
"""client -> what a ``model`` declaration adds to its options to use that client."""

PROMPTS = '''
type Pair = {{ name: str, n: int }}

prompt say(x: str) -> str {{
  user "Say one short sentence about {{{{ x }}}}."
  params {{ stop: ["\\n"] }}
}}

prompt pair(x: str) -> Pair {{
  user "Reply with a JSON object with a name and a number for {{{{ x }}}}."
  params {{ max_tokens: 40 }}
  retries 2
}}

tool mark(word: str) -> str = python "marks:mark"

hook tag {{
  when r"(?P<word>[A-Za-z]{{3,}})[ ,.]$"
  run mark(word=word)
  action insert
  max_fires 1
}}

prompt story(x: str) -> str {{
  user "Tell a short story about {{{{ x }}}}."
  params {{ max_tokens: 24 }}
  hooks [tag]
}}
'''
"""``say`` (one line), ``pair`` (a record), ``story`` (hooked: ``tag`` inserts
`` [seen WORD]`` once, after the first word of three letters or more), as text for
``str.format`` (braces doubled) to follow a program's ``model default``."""


def write_marks(folder: Path) -> None:
    """Write ``marks.py``, the module of the ``mark`` tool of :data:`PROMPTS`."""
    (folder / "marks.py").write_text("def mark(word):\n    return ' [seen ' + word + ']'\n")


def backend(client: str, base: str, *, model: str = "openai/smollm2", attempts: int = 2,
            **params: Any) -> LiteLLMBackend:
    """A backend of ``client`` for the server at ``base`` (a 60 s timeout, ``attempts``
    attempts per call); ``params`` are more model options."""
    cls = OpenAIHTTPBackend if client == "fast" else LiteLLMBackend
    return cls(model, {"api_base": base, "timeout": 60, **params}, max_attempts=attempts)


def run_config(tmp_path: Path, **options: Any) -> RunConfig:
    """A run without the response cache, its traces under ``tmp_path``."""
    return RunConfig(cache=CacheMode.OFF, trace_dir=tmp_path / "traces", **options)


def run(program: Any, handler: str, tmp_path: Path, **inputs: Any) -> Any:
    """Run ``handler`` of ``program`` (:func:`run_config`). Raises ``RunFailed``."""
    return asyncio.run(program.arun(handler, config=run_config(tmp_path), **inputs))


def stream(b: LiteLLMBackend, text: str, max_tokens: int) -> list[StreamEvent]:
    """The events of a greedy stream of the reply to the user message ``text``, read to
    its end; the backend is closed after. Raises ``ModelError``."""
    async def go() -> list[StreamEvent]:
        out = [ev async for ev in b.stream([Message("user", text)], None,
                                           GenParams(max_tokens=max_tokens, temperature=0.0))]
        await b.aclose()
        return out

    return asyncio.run(go())


def posts(server: Server, mark: int) -> list[tuple[str, str, int]]:
    """(method, path, status) of each POST ``server`` logged after ``mark``."""
    return [q for q in server.requests_since(mark) if q[0] == "POST"]
