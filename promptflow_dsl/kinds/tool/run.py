"""Running a ``tool`` handler: a Python callable, sync or async.

The target ``"module:function"`` is resolved as the checker resolved it: a
module file beside the ``.pflow`` file is loaded by path under a name unique to
that path (so two folders may both have a ``tools.py``); otherwise the module is
imported normally.  Arguments are passed by keyword, records as instances of
their pydantic models; a synchronous function runs in a worker thread so that
fan-outs of tools run concurrently.  When a tool raises, the error shows its
exception with the traceback trimmed to the user's own frames.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import inspect
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ...check.program import HandlerInfo
from ...check.pyrefs import locate_module
from ...lang.values import to_python
from ...runtime.errors import RunError, user_traceback
from .details import ToolDetails

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import RunContext
    from ...runtime.trace import Step

_LOCK = threading.Lock()


def _load_by_path(path: Path) -> ModuleType:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"_pflow_tools_{digest}_{path.stem}"
    with _LOCK:
        if name in sys.modules:
            return sys.modules[name]
        folder = str(path.resolve().parent)
        if folder not in sys.path:  # so a tool module can import its sibling modules
            sys.path.append(folder)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module


def resolve_callable(h: HandlerInfo, pflow_path: Path | None) -> Any:
    """Import the tool's module and return its function.  Raises :class:`RunError`."""
    assert isinstance(h.details, ToolDetails)
    target = h.details.target
    module_name, _, func_path = target.partition(":")
    name = h.name
    try:
        where = locate_module(module_name, pflow_path)
        beside = (where is not None and where.endswith(".py") and pflow_path is not None
                  and Path(where).resolve().is_relative_to(pflow_path.parent.resolve()))
        if beside:
            module = _load_by_path(Path(str(where)))
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:
        raise RunError(f"tool '{name}': importing '{module_name}' failed: {type(exc).__name__}: {exc}",
                       span=h.decl.name_span, handler=name, detail=user_traceback(exc)) from None
    obj: Any = module
    for part in func_path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise RunError(f"tool '{name}': '{module_name}' has no '{func_path}'",
                           span=h.decl.name_span, handler=name)
    if not callable(obj):
        raise RunError(f"tool '{name}': '{target}' is not callable", span=h.decl.name_span,
                       handler=name)
    return obj


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Call tool ``h`` (holding one of the run's concurrency slots); returns its
    (unvalidated) result.  Raises :class:`RunError`."""
    async with ctx.limit:
        return await _call(ctx, h, inputs)


async def _call(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any]) -> Any:
    mod = ctx.program.module_of(h.key)
    fn = resolve_callable(h, mod.path)
    name = ctx.program.display_name(h.key)
    try:
        kwargs = {p.name: to_python(inputs[p.name], p.type) for p in h.signature.params}
    except ValueError as exc:
        raise RunError(f"tool '{name}': {exc}", span=h.decl.name_span, handler=name) from None
    try:
        if inspect.iscoroutinefunction(fn):
            result = await fn(**kwargs)
        elif ctx.sequential:
            result = fn(**kwargs)
        else:
            result = await asyncio.to_thread(fn, **kwargs)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        detail = user_traceback(exc)
        raise RunError(f"tool '{name}' raised {type(exc).__name__}: {exc}", span=h.decl.name_span,
                       handler=name, detail=detail) from None
    return result
