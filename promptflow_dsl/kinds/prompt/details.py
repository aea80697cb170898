"""What the checker records about a ``prompt`` (check stage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...check.program import Details


@dataclass(frozen=True, kw_only=True)
class PromptDetails(Details):
    model: str | None = None  # the `model` clause's model name (None: default)
    params: dict[str, Any] = field(default_factory=dict)  # the `params` clause
    demos: list[dict[str, Any]] | None = None  # the rows of the `demos` file
    retries: int = 2
    hooks: tuple[str, ...] = ()  # hook keys, as listed
    hook_calls: tuple[str, ...] = ()  # handlers the hooks' triggers, conditions and programs call
    template_vars: tuple[frozenset[str], ...] = ()  # the variables each message reads
    completion: bool = False  # a completion prompt: its one text is sent raw (no chat template)
    shots: str | None = None  # the `shots` text, exactly as in its file (`{{ shots }}`)
    stop: tuple[str, ...] = ()  # the `stop` clause's strings

    def edges(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, "hook") for k in self.hook_calls)
