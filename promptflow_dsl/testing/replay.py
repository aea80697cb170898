"""Record and replay of ``live`` tests.

``pflow test --record`` runs ``live`` tests against their real models through a
:class:`Recorder`, which stores every request's digest and reply, in call order,
in ``NAME.pflow.replay.json`` beside the program.  Later runs serve those replies
offline through a :class:`Replayer`; a request whose digest differs from the
recorded one (the prompt, the parameters or the order of calls changed) fails the
test and says to record again.  The file is JSON (reviewable, diff-able) and holds
no API keys: requests are stored only as digests.

A hooked prompt's continuation is recorded in the program's terms (kind
``continue``: the prompt's messages, the text so far and the parameters with the
call's own stop strings), never as the request a strategy made of it (a raw
completion in the server's chat template, a continuation prompt), so a recording
replays whichever server, profile or chat template answered it; while recording, the
model continues exactly as in a live run (its own template, ``chat_transcript``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..lang import jsondata
from ..models.base import (
    Backend,
    Capabilities,
    GenParams,
    Message,
    Reply,
    Scored,
    ScriptError,
    StreamEvent,
    Usage,
)
from ..models.emulate import INTERNAL_PREFIX, whitespace_chunks
from ..models.remote import CONFIG_KEYS
from ..runtime.cache import CACHE_FORMAT, cache_key, canonical_json
from ..runtime.cache import KINDS as CACHE_KINDS
from ..runtime.cache import _strip_secrets as strip_secrets

REPLAY_FORMAT = 1


def replay_path(pflow_file: Path) -> Path:
    return pflow_file.with_name(pflow_file.name + ".replay.json")


def request_digest(kind: str, payload: dict[str, Any]) -> str:
    """The first 16 hex digits of the request's key, computed as the response cache
    computes one (also for the kinds the cache never stores: ``stream``, ``continue``),
    so recordings stay valid across versions."""
    if kind in CACHE_KINDS:
        return cache_key("", kind, payload)[:16]
    record = {"v": CACHE_FORMAT, "model": "", "kind": kind, "payload": strip_secrets(payload),
              "sample": 0}
    return hashlib.sha256(canonical_json(record).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _params(params: GenParams) -> dict[str, Any]:
    view = params.cache_view()
    # what configures the client (the server kind, a chat template, capability flags) is
    # not the request: a recording replays whichever server or template answered it
    view["extra"] = {k: v for k, v in view["extra"].items()
                     if not k.startswith(INTERNAL_PREFIX) and k not in CONFIG_KEYS}
    return view


def _messages(messages: list[Message] | None) -> list[dict[str, str]] | None:
    return None if messages is None else [m.as_dict() for m in messages]


def _continuation(messages: list[Message], text: str, params: GenParams) -> dict[str, Any]:
    return {"messages": _messages(messages), "assistant": text, "params": _params(params)}


_REPLY_CHECKS: dict[str, tuple[str, Any]] = {
    "chat": ("text", lambda r: isinstance(r, str)),
    "complete": ("text", lambda r: isinstance(r, str)),
    "stream": ("text", lambda r: isinstance(r, str)),
    "continue": ("text", lambda r: isinstance(r, str)),
    "score": ("a list of {text, logprob, tokens}", lambda r: isinstance(r, list) and all(
        isinstance(x, dict) and isinstance(x.get("text"), str)
        and isinstance(x.get("logprob"), (int, float)) and not isinstance(x.get("logprob"), bool)
        and isinstance(x.get("tokens"), int) for x in r)),
    "embed": ("a list of vectors", lambda r: isinstance(r, list) and all(
        isinstance(v, list) and all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                    for f in v) for v in r)),
}


def _checked(path: Path, data: Any) -> dict[str, list[dict[str, Any]]]:
    """The tests of a recordings file, every call checked for shape.  Raises
    ``ValueError`` naming the file and the first thing wrong (the file was edited by
    hand or damaged: recording again rewrites it)."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: {what}; record again with `pflow test --record` "
                          f"(or delete the file)")

    if not isinstance(data, dict):
        raise bad(f"the recordings are {type(data).__name__}, not a JSON object")
    if data.get("format") != REPLAY_FORMAT:
        raise bad(f"unknown recording format {data.get('format')!r}")
    tests = data.get("tests", {})
    if not isinstance(tests, dict):
        raise bad(f"'tests' is {type(tests).__name__}, not an object of test name -> calls")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, calls in tests.items():
        if not isinstance(calls, list):
            raise bad(f"test \"{name}\": the calls are {type(calls).__name__}, not a list")
        for i, call in enumerate(calls, 1):
            where = f"test \"{name}\", call {i}"
            if not isinstance(call, dict):
                raise bad(f"{where} is {type(call).__name__}, not an object")
            if call.get("kind") == "capabilities":
                reply = call.get("reply")
                fields = {f.name for f in dataclasses.fields(Capabilities)}
                if not isinstance(call.get("model"), str) or not isinstance(reply, dict) or any(
                        k not in fields or not isinstance(v, bool) for k, v in reply.items()):
                    raise bad(f"{where} (capabilities) is not a model name and an object of "
                              f"capability flags ({', '.join(sorted(fields))})")
                continue
            if not isinstance(call.get("model"), str) or not isinstance(call.get("request"), str):
                raise bad(f"{where} has no 'model' and 'request' text")
            check = _REPLY_CHECKS.get(call.get("kind"))  # type: ignore[arg-type]
            if check is None:
                raise bad(f"{where} has an unknown kind {call.get('kind')!r}")
            if "reply" not in call or not check[1](call["reply"]):
                raise bad(f"{where} ({call['kind']}): the reply is not {check[0]}")
        out[str(name)] = list(calls)
    return out


class ReplayFile:
    """The recordings of one ``.pflow`` file: test name -> list of calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, list[dict[str, Any]]] = {}
        if path.exists():
            try:
                data = jsondata.loads(path.read_text(encoding="utf-8"), jsondata.MAX_FILE_DEPTH)
            except (OSError, UnicodeDecodeError, ValueError) as exc:  # also too deep, not JSON
                raise ValueError(f"cannot read recordings {path}: {exc}") from None
            self.tests = _checked(path, data)

    def save(self) -> None:
        text = json.dumps({"format": REPLAY_FORMAT, "tests": self.tests}, indent=2,
                          ensure_ascii=False, sort_keys=True) + "\n"
        write_atomic(self.path, text.encode("utf-8"), prefix=".replay-")


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

    def chat_transcript(self, messages: list[Message]) -> tuple[str, tuple[str, ...]] | None:
        """The wrapped model's own raw-completion prompt for ``messages`` (ChatML for a
        model without one, as ``kinds/prompt/continuation.transcript`` does), so a model
        continues while recording exactly as in a live run."""
        from ..kinds.prompt.continuation import transcript

        return transcript(self.inner, messages)

    async def continuation_stream(self, messages: list[Message], text: str, params: GenParams,
                                  open_inner: Callable[[Backend], AsyncIterator[StreamEvent]],
                                  clean: Callable[[str], str],
                                  flush: Callable[[], str]) -> AsyncIterator[StreamEvent]:
        """A hooked prompt's continuation of ``text``: the strategy's request
        (``open_inner``) runs on the wrapped model, its text cleaned as in a live run
        (:func:`~promptflow_dsl.kinds.prompt.hooks.cleaned`), and the call is recorded as
        ``continue`` in the program's terms (as far as it went). Raises what the model
        raises."""
        from ..kinds.prompt.hooks import cleaned

        out: list[str] = []
        events = cleaned(open_inner(self.inner), clean, flush)
        try:
            async for ev in events:
                out.append(ev.text)
                yield ev
        finally:
            await events.aclose()
            self._add("continue", _continuation(messages, text, params), "".join(out))

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

    async def continuation_stream(self, messages: list[Message], text: str, params: GenParams,
                                  open_inner: Callable[[Backend], AsyncIterator[StreamEvent]],
                                  clean: Callable[[str], str],
                                  flush: Callable[[], str]) -> AsyncIterator[StreamEvent]:
        """The recorded continuation of ``text`` (recorded in the program's terms, so the
        strategy and chat template of the recording do not matter). Raises
        :class:`ScriptError` when it differs from the recording."""
        reply = self._next("continue", _continuation(messages, text, params))
        for chunk in whitespace_chunks(reply):
            yield StreamEvent(chunk)
        yield StreamEvent("", Usage(), "stop")

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        rows = self._next("score", {"prefix": prefix, "continuations": continuations})
        return [Scored(r["text"], r["logprob"], r["tokens"]) for r in rows]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return self._next("embed", {"texts": texts})

    async def aclose(self) -> None:
        return None
