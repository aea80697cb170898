"""``pflow run --stream``: the result's text as the model writes it, progress on stderr.

The text streamed to stdout is that of the prompt whose reply *is* the result: the
entry handler itself when it is a prompt with a ``str`` result, or, for a flow, the
prompt called by its ``return`` (``return write(...)``, or ``return v`` where ``v =
write(...)``) when the flow calls that prompt nowhere else.  Every other step called by the entry gets a line on stderr when it
starts and when it ends.  Any other result is printed whole at the end, as without
``--stream``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram
    from ..runtime import RunConfig, RunResult
    from ..runtime.trace import Step

ENTRY_STEP = "s1"  # the recorder numbers steps from 1, and the entry call starts first


def streamed_handler(program: CheckedProgram, handler: str) -> str | None:
    """The display name of the prompt whose text is ``handler``'s result, or None."""
    from ..lang.types import STR
    from ..syntax import ast

    h = program.handler(handler)
    if h.signature.returns != STR:
        return None
    if h.kind == "prompt":
        return program.display_name(h.key) if _chat_prompt(h) else None
    if h.kind != "flow":
        return None
    from ..plan import plan_for

    plan = plan_for(program, h)
    if "return" not in plan.steps:
        return None
    ret = plan.steps["return"]
    preds = [plan.steps[u] for u, v, kind in plan.edges() if v == "return" and kind == "data"]
    calls = [s for s in preds if s.kind == "call" and s.guard is None and s.handler is not None]
    if isinstance(ret.expr, ast.Name):
        found = [s for s in calls if s.binds == ret.expr.name]
    elif isinstance(ret.expr, ast.Call):
        found = [s for s in calls if s.id.startswith("return#")]
    else:
        return None
    if len(found) != 1 or found[0].handler is None:
        return None
    key = found[0].handler
    # the flow must call that prompt only there: its other calls could not be told apart
    nodes = {sid for sid, s in plan.steps.items() if s.kind == "handler" and s.handler == key}
    callers = {u for u, v, _ in plan.edges() if v in nodes and plan.steps[u].kind != "handler"}
    callers |= {sid for sid, s in plan.steps.items() if s.kind in ("call", "map") and s.handler == key}
    if callers != {found[0].id}:
        return None
    callee = program.all_handlers()[key]
    if callee.kind != "prompt" or callee.signature.returns != STR or not _chat_prompt(callee):
        return None
    return program.display_name(callee.key)


def _chat_prompt(h: Any) -> bool:
    details = h.details
    return not getattr(details, "completion", False) and not getattr(details, "hooks", ())


def run_streamed(program: CheckedProgram, handler: str, inputs: dict[str, Any],
                 config: RunConfig, *, quiet: bool) -> tuple[RunResult, bool]:
    """Run with text and progress shown as they come; returns (the result, whether the
    result's text was printed already).  Raises what ``runtime.run`` raises."""
    from ..runtime import RunResult
    from ..runtime.streaming import Finished, StepFinished, StepStarted, TextDelta, stream_run
    from ..runtime.sync import run_sync

    target = streamed_handler(program, handler)

    def text_of(step: Step) -> bool:
        return target is not None and step.handler == target and (
            step.id == ENTRY_STEP or step.parent == ENTRY_STEP)

    async def consume() -> tuple[Any, bool]:
        printed = False
        async for event in stream_run(program, handler, inputs, config, text_of):
            if isinstance(event, TextDelta):
                sys.stdout.write(event.text)
                sys.stdout.flush()
                printed = True
            elif isinstance(event, Finished):
                return RunResult(event.value, event.trace, event.trace_path), printed
            elif quiet or event.parent != ENTRY_STEP:
                continue
            elif isinstance(event, StepStarted):
                print(f"… {event.handler} ({event.kind})", file=sys.stderr, flush=True)
            elif isinstance(event, StepFinished):
                mark = "✓" if event.status == "ok" else ("✗" if event.status == "failed" else "·")
                print(f"{mark} {event.handler} {event.status} in {event.latency_ms / 1000:.2f}s",
                      file=sys.stderr, flush=True)
        raise AssertionError("a stream ends with Finished or raises")  # pragma: no cover

    result, printed = run_sync(consume())
    if printed:
        sys.stdout.write("\n")
        sys.stdout.flush()
    return result, printed
