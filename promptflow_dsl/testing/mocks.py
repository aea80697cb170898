"""Model stand-ins for tests: scripted replies per model name, and a guard that fails
clearly when a test reaches a model it did not mock."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..models.base import Capabilities, GenParams, Message, Reply, Scored, ScriptError, StreamEvent
from ..models.scripted import ScriptedBackend

__all__ = ["ScriptedBackend", "UnmockedModel", "NotMocked"]


class NotMocked(ScriptError):
    """A test reached a model it did not mock (and the test is not ``live``)."""

    def __init__(self, name: str, test: str) -> None:
        if test == "<python>":  # the Python harness
            message = (f"model '{name}' is not mocked: call mock_model({name!r}, [...]) first, "
                       f"or load the harness with live=True")
        else:
            message = (f"test \"{test}\" calls model '{name}', which it does not mock: add "
                       f"`mock model {name} replies [...]`, or mark the test `live`")
        super().__init__(name, message)


class UnmockedModel:
    """A backend that refuses every call: the test did not mock model ``name``."""

    def __init__(self, name: str, test: str) -> None:
        self.model_id = name
        self.test = test
        self.capabilities = Capabilities(chat=True, completion=True, streaming=True)

    def _refuse(self) -> NotMocked:
        return NotMocked(self.model_id, self.test)

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        raise self._refuse()

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        raise self._refuse()

    async def stream(self, messages: list[Message] | None, prefix: str | None,
                     params: GenParams) -> AsyncIterator[StreamEvent]:
        raise self._refuse()
        yield  # pragma: no cover - makes this an async generator

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        raise self._refuse()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise self._refuse()

    async def aclose(self) -> None:
        return None
