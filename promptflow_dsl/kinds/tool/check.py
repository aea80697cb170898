"""The rules of ``tool`` (check stage): the target is a Python function that exists,
found without importing it."""

from __future__ import annotations

from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker
from ...check.program import Signature
from ...check.pyrefs import check_python_target
from .ast import ToolDecl
from .details import ToolDetails


def check(env: ModuleEnv, d: ToolDecl, sig: Signature, exprs: ExprChecker) -> ToolDetails:
    diag, where = check_python_target(d.target.value, env.path, d.target.span)
    if diag is not None:
        env.diags.append(diag)
    return ToolDetails(target=d.target.value, module_file=where)
