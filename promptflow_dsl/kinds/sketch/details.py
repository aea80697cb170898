"""What the checker records about a ``sketch`` (check stage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...check.program import Details


@dataclass(frozen=True, kw_only=True)
class SketchDetails(Details):
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    decoder: str = "sequential"  # sequential | interleaved | beam (the variable-level searches)
    beam: int = 1  # the beam width
    search: str = ""  # for decoder beam: var | beam_var
    label: str = ""  # the decoder as written: sequential, var(2), beam_var(3), beam(2)
    retries: int = 2
    holes: tuple[str, ...] = ()  # hole names, in template order
