"""What the checker records about a ``decompose`` (check stage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...check.program import Details

DEFAULT_MAX_STEPS = 10
DEFAULT_MAX_DEPTH = 8
DEFAULT_MAX_CALLS = 200
MAX_DEPTH_LIMIT = 100
"""The largest ``max_depth`` the checker accepts: a failure deep in a decomposition
names every step on the way, so the message grows with the square of the depth."""

#: ``protocol decomp``: the first parts of an op and its sub-ops (``project_values_flat``)
REF_FIRST_OPS = ("select", "project", "projectValues", "projectKeys", "filter")
REF_SUB_OPS = ("flat", "unique", "keys", "values")


def known_op(op: str) -> bool:
    """Whether ``protocol decomp`` can run ``op``: its first part (``filter(#2)`` is
    ``filter``) and every sub-op after it."""
    parts = op.split("_")
    return parts[0].split("(")[0] in REF_FIRST_OPS and all(p in REF_SUB_OPS for p in parts[1:])


@dataclass(frozen=True, kw_only=True)
class DecomposeDetails(Details):
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    handlers: dict[str, str] = field(default_factory=dict)  # name written in [name] -> handler key
    fewshot: str | None = None  # the few-shot text (inline, or read from the prompt file)
    prompt_path: str | None = None  # the prompt file, when the few-shot text came from one
    max_steps: int = DEFAULT_MAX_STEPS
    max_depth: int = DEFAULT_MAX_DEPTH
    # the most handler calls one top-level call makes in all (nested calls, items included)
    max_calls: int = DEFAULT_MAX_CALLS
    protocol: str = "pflow"  # pflow | decomp
    beam: int = 1  # candidate lines per step of a best-first search (1: greedy)

    may_recurse: ClassVar[bool] = True  # bounded by max_depth and max_calls

    def edges(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, "may_call") for k in self.handlers.values())
