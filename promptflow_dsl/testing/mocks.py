"""Model stand-ins for tests: scripted replies per model name, and a guard that fails
clearly when a test reaches a model it did not mock."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..models.base import Capabilities, GenParams, Message, Reply, Scored, StreamEvent
from ..models.scripted import ScriptedBackend
from ..runtime.context import NotMocked

__all__ = ["ScriptedBackend", "UnmockedModel", "NotMocked"]


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
