"""What the checker records about a ``flow`` (check stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...check.program import Details


@dataclass(frozen=True, kw_only=True)
class FlowDetails(Details):
    order: tuple[str, ...] = ()  # the assigned names in an order their dependencies allow
