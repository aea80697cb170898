"""What the checker records about a ``route`` and its experts (check stage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...check.program import Details


@dataclass(frozen=True, kw_only=True)
class ExpertDetails:
    model: str | None = None  # the expert's own `model` clause
    instruction: str | None = None
    demos: list[dict[str, Any]] | None = None  # the rows of its `demos` file
    delegate: str | None = None  # the handler key of `-> handler`


@dataclass(frozen=True, kw_only=True)
class AutoDetails:
    """``experts auto from "FILE" max K``."""

    max_k: int
    rows: int  # how many rows the training file has
    demos: list[dict[str, Any]] | None  # the rows (None when the file could not be read)
    path: str | None  # the training file


@dataclass(frozen=True, kw_only=True)
class RouteDetails(Details):
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    by: str | None = None  # embedding | llm | rule (None: not given)
    retries: int = 2  # re-asks of the llm router and of an expert's reply
    embed: str | None = None  # the `embed` model
    experts: dict[str, ExpertDetails] = field(default_factory=dict)  # in the order written
    auto: AutoDetails | None = None
    protocol: str = "pflow"  # pflow | mop (Mixture-of-Prompts' reference behaviour)

    def edges(self) -> tuple[tuple[str, str], ...]:
        return tuple((e.delegate, "may_call") for e in self.experts.values()
                     if e.delegate is not None)
