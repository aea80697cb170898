"""Record and replay of ``live`` tests.

``pflow test --record`` runs ``live`` tests against their real models through a
:class:`Recorder`, which stores every request's digest and reply, in call order,
in ``NAME.pflow.replay.json`` beside the program.  Later runs serve those replies
offline through a :class:`Replayer`; a request whose digest differs from the
recorded one (the prompt, the parameters or the order of calls changed) fails the
test and says to record again.  The file is JSON (reviewable, diff-able) and holds
no API keys: requests are stored only as digests.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..models.base import (
    Backend,
    GenParams,
    Message,
    Reply,
    Scored,
    ScriptError,
    StreamEvent,
    Usage,
)
from ..models.emulate import INTERNAL_PREFIX, whitespace_chunks
from ..runtime.cache import cache_key

REPLAY_FORMAT = 1


def replay_path(pflow_file: Path) -> Path:
    return pflow_file.with_name(pflow_file.name + ".replay.json")


def request_digest(kind: str, payload: dict[str, Any]) -> str:
    return cache_key("", kind, payload)[:16]


def _params(params: GenParams) -> dict[str, Any]:
    view = params.cache_view()
    view["extra"] = {k: v for k, v in view["extra"].items() if not k.startswith(INTERNAL_PREFIX)}
    return view


def _messages(messages: list[Message] | None) -> list[dict[str, str]] | None:
    return None if messages is None else [m.as_dict() for m in messages]


class ReplayFile:
    """The recordings of one ``.pflow`` file: test name -> list of calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, list[dict[str, Any]]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"cannot read recordings {path}: {exc}") from None
            if data.get("format") != REPLAY_FORMAT:
                raise ValueError(f"{path}: unknown recording format {data.get('format')!r}")
            self.tests = {k: list(v) for k, v in data.get("tests", {}).items()}

    def save(self) -> None:
        text = json.dumps({"format": REPLAY_FORMAT, "tests": self.tests}, indent=2,
                          ensure_ascii=False, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".replay-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class Recorder:
    """Wraps a real backend and appends every call of model ``name`` to ``log``."""

    def __init__(self, name: str, inner: Backend, log: list[dict[str, Any]]) -> None:
        self.name = name
        self.inner = inner
        self.model_id = inner.model_id
        self.capabilities = inner.capabilities
        self.log = log

    def _add(self, kind: str, payload: dict[str, Any], reply: Any) -> None:
        self.log.append({"model": self.name, "kind": kind,
                         "request": request_digest(kind, payload), "reply": reply})

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        r = await self.inner.chat(messages, params)
        self._add("chat", {"messages": _messages(messages), "params": _params(params)}, r.text)
        return r

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        r = await self.inner.complete(prefix, params)
        self._add("complete", {"prefix": prefix, "params": _params(params)}, r.text)
        return r

    async def stream(self, messages: list[Message] | None, prefix: str | None,
                     params: GenParams) -> AsyncIterator[StreamEvent]:
        text = []
        try:
            async for ev in self.inner.stream(messages, prefix, params):
                text.append(ev.text)
                yield ev
        finally:  # a stream cut short (by a hook) is recorded as far as it went
            self._add("stream", {"messages": _messages(messages), "prefix": prefix,
                                 "params": _params(params)}, "".join(text))

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        out = await self.inner.score(prefix, continuations)
        self._add("score", {"prefix": prefix, "continuations": continuations},
                  [{"text": s.text, "logprob": s.logprob, "tokens": s.tokens} for s in out])
        return out

    async def embed(self, texts: list[str]) -> list[list[float]]:
        out = await self.inner.embed(texts)
        self._add("embed", {"texts": texts}, out)
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()


class Replayer:
    """Serves the recorded calls of model ``name`` in order, checking each request."""

    def __init__(self, name: str, test: str, calls: list[dict[str, Any]], capabilities: Any) -> None:
        self.model_id = name
        self.name = name
        self.test = test
        self.calls = [c for c in calls if c.get("model") == name and c.get("kind") != "capabilities"]
        self.capabilities = capabilities
        self.index = 0

    def _next(self, kind: str, payload: dict[str, Any]) -> Any:
        n = self.index
        self.index += 1
        if n >= len(self.calls):
            raise ScriptError(self.name,
                f"test \"{self.test}\": model '{self.name}' was called more often than when it "
                f"was recorded (call {n + 1}); record again with `pflow test --record`")
        rec = self.calls[n]
        if rec.get("kind") != kind or rec.get("request") != request_digest(kind, payload):
            raise ScriptError(self.name,
                f"test \"{self.test}\": call {n + 1} of model '{self.name}' differs from the "
                f"recording (the prompt or its parameters changed); record again with "
                f"`pflow test --record`")
        return rec["reply"]

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        text = self._next("chat", {"messages": _messages(messages), "params": _params(params)})
        return Reply(text, self.name, Usage())

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        return Reply(self._next("complete", {"prefix": prefix, "params": _params(params)}),
                     self.name, Usage())

    async def stream(self, messages: list[Message] | None, prefix: str | None,
                     params: GenParams) -> AsyncIterator[StreamEvent]:
        text = self._next("stream", {"messages": _messages(messages), "prefix": prefix,
                                     "params": _params(params)})
        for chunk in whitespace_chunks(text):
            yield StreamEvent(chunk)
        yield StreamEvent("", Usage(), "stop")

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        rows = self._next("score", {"prefix": prefix, "continuations": continuations})
        return [Scored(r["text"], r["logprob"], r["tokens"]) for r in rows]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return self._next("embed", {"texts": texts})

    async def aclose(self) -> None:
        return None
