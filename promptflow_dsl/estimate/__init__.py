"""Estimates of model calls, tokens and cost before any call (``pflow estimate``).

See README.md in this folder. :func:`estimate` estimates a handler or an eval;
:func:`estimate_eval` gives an eval's estimate as JSON (for a run's ``summary.json``).
"""

from __future__ import annotations

from .api import EVAL_MAX_ROWS, Estimate, estimate, estimate_eval, resolve
from .data import EstimateError

__all__ = ["EVAL_MAX_ROWS", "Estimate", "EstimateError", "estimate", "estimate_eval", "resolve"]
