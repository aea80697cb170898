"""The plan stage: a checked program + one handler -> :class:`Plan`, a networkx DAG.

Imported only when a plan is asked for (``Program.plan``, a run, ``pflow graph``), so
``import promptflow_dsl`` and ``pflow check`` never import networkx.
"""

from __future__ import annotations

from .model import Plan, PlanError, PlannedStep
from .planner import build_plan, plan_for

__all__ = ["Plan", "PlanError", "PlannedStep", "build_plan", "plan_for"]
