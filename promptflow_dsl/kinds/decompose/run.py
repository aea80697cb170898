"""Running a ``decompose`` handler: the Decomposed Prompting loop (Khot et al., ICLR 2023).

The decomposer model continues a text: the few-shot examples, ``QC: <question>``,
every earlier ``QS: <line>`` / ``A: <answer as JSON>`` pair, then ``QS:``.  It
writes one line per step (stop at a newline; temperature 0 unless the model or
the handler's ``params`` set one):

* ``[handler] sub-question`` — ``select``: call the handler once; each ``#k`` in the
  sub-question is replaced by the k-th answer, JSON-encoded;
* ``(op) [handler] sub-question`` — ``foreach`` (alias ``project_values``) calls the
  handler once per item of the list that the first list-valued ``#k`` names (a string
  item replaces it as plain text, any other item as JSON), concurrently unless the run
  is sequential, with the answers in item order; ``foreach_merge`` (alias
  ``project_values_flat_unique``) flattens those answers, keeping the first of
  duplicates; ``filter`` keeps the items whose answer is true;
* ``[EOQ]`` — the call returns the last answer (not a step).

Handlers of any kind get the sub-question as their first parameter (the others take
their defaults) through :meth:`RunContext.call`, so counters, mocks and the trace
see every sub-call, as a child step of the decomposer's step.  ``max_steps`` bounds
the step lines of one call; the top decomposer call has depth 1 and a nested one
past its ``max_depth`` fails (the checker accepts at most 100); ``max_calls`` (default
200) bounds the handler calls of a top-level call and everything under it — nested
decomposer calls and ``foreach`` items included, a step's items taken at once, so a
step that would pass it starts none.  Each sub-call runs in a task of its own, so
recursion uses no Python stack per level.  When an item of a ``foreach`` fails, the
items still running are cancelled at once.  Every failure is a :class:`RunError` that names the
chain of steps that led to it, e.g. ``decompose 'concat': step 2 (foreach) [letter]
What is letter 9 of "Ada"? (item 1) → tool 'letter' raised ValueError: ...``.
Each step is recorded as a ``decomp`` event on the decomposer's trace step.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ...check.program import HandlerInfo
from ...models.base import GenParams
from ...runtime.errors import RunError
from ...runtime.ledger import HandlerRun
from .ast import DecomposeDecl
from .details import DecomposeDetails
from .ops import (
    LineError,
    StepLine,
    build_prefix,
    clip,
    encode,
    first_line,
    flat_unique,
    list_ref,
    parse_line,
    substitute,
    substitute_item,
    truthy,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...diagnostics import Span
    from ...runtime.context import RunContext
    from ...runtime.trace import Step

#: tokens one decomposer line may take unless the model or the handler sets ``max_tokens``
DEFAULT_MAX_TOKENS = 128

#: decomposer calls in progress in this task (and the tasks it started): the depth
_DEPTH: ContextVar[int] = ContextVar("pflow_decompose_depth", default=0)


class _Budget:
    """The handler calls left to one top-level decomposer call and everything under it."""

    def __init__(self, limit: int, owner: str) -> None:
        self.limit = limit
        self.owner = owner
        self.used = 0


#: the budget of the top-level decomposer call this task runs under (None: at the top)
_BUDGET: ContextVar[_Budget | None] = ContextVar("pflow_decompose_budget", default=None)


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run decomposer ``h`` on its question; returns the last answer.  Raises :class:`RunError`."""
    decomposition = _Decomposition(ctx, h, inputs, step)
    if decomposition.details.protocol == "decomp":
        from .refrun import RefDecomposition  # the reference protocol (and its search)

        decomposition = RefDecomposition(ctx, h, inputs, step)
    depth = _DEPTH.get() + 1
    limit = decomposition.details.max_depth
    if depth > limit:
        raise decomposition.fail(f"a decomposer call at depth {depth} is past max_depth {limit} "
                                 f"(nesting or recursion too deep)")
    token = _DEPTH.set(depth)
    budget = _BUDGET.get()
    budget_token = None
    if budget is None:  # a top-level decomposer call: its max_calls bounds the whole tree
        budget_token = _BUDGET.set(_Budget(decomposition.details.max_calls, decomposition.name))
    try:
        return await decomposition.loop(depth)
    finally:
        _DEPTH.reset(token)
        if budget_token is not None:
            _BUDGET.reset(budget_token)


class _Decomposition(HandlerRun):
    """The state of one decomposer call: its answers so far and the model it asks."""

    def __init__(self, ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any],
                 step: Step) -> None:
        super().__init__(ctx, h, step)
        decl, details = h.decl, h.details
        assert isinstance(decl, DecomposeDecl) and isinstance(details, DecomposeDetails)
        self.decl, self.details = decl, details
        self.question = str(inputs[h.signature.params[0].name])
        self.fewshot = details.fewshot or ""
        self.handlers: dict[str, str] = dict(details.handlers)
        self.spans: dict[str, Span] = {b.name: b.span for b in decl.handlers}
        self.max_steps = details.max_steps
        self.model_name = decl.model.dotted if decl.model is not None else None
        self.answers: list[Any] = []
        self.history: list[tuple[str, Any]] = []
        self.lines: list[str] = []

    # ------------------------------------------------------------ the loop

    async def loop(self, depth: int) -> Any:
        params = self._params()
        while True:  # each turn returns, fails, or adds an answer (at most max_steps)
            k = len(self.answers) + 1
            prefix = build_prefix(self.fewshot, self.question, self.history)
            line = await self._ask(prefix, params, depth)
            try:
                parsed = parse_line(line)
            except LineError as exc:
                raise self.fail(f"step {k}: {exc}") from None
            if parsed.eoq:
                if not self.answers:
                    raise self.fail("the decomposer wrote [EOQ] before any step: there is no "
                                    "answer to return")
                self._step_event(k, parsed, [], self.answers[-1], eoq=True)
                return self.answers[-1]
            if len(self.answers) >= self.max_steps:
                raise self.fail(f"step {k}: past max_steps {self.max_steps}: after "
                                f"{self.max_steps} steps the decomposer wrote {line!r} "
                                f"instead of [EOQ]")
            answer = await self._step(k, parsed)
            self.answers.append(answer)
            self.history.append((parsed.text, answer))

    def _params(self, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> GenParams:
        """Greedy, one line, ``default_max_tokens`` per line, where neither the
        decomposer nor its model sets temperature or max_tokens."""
        _, _, model_params = self.ctx.backend_for(self.h, self.model_name)
        own = dict(self.details.params)
        temperature = None if "temperature" in own or "temperature" in model_params else 0.0
        max_tokens = (None if "max_tokens" in own or "max_tokens" in model_params
                      else default_max_tokens)
        return GenParams(stop=("\n",), temperature=temperature, max_tokens=max_tokens,
                         extra=own | {"pflow_handler": self.name})

    async def _ask(self, prefix: str, params: GenParams, depth: int) -> str:
        """One model call: the next line of the decomposition."""
        reply, hit, model_id = await self.ctx.complete(self.h, self.model_name, prefix, params)
        line = first_line(reply.text)
        self.lines.append(line)
        self.ledger.record(reply.usage, hit, model_id)
        self.ctx.annotate(self.step, reply="\n".join(self.lines),
                          extra={"depth": depth, "model_calls": self.ledger.calls, "prompt": prefix})
        return line

    async def _step(self, k: int, s: StepLine) -> Any:
        key = self._handler_key(k, s)
        try:
            if s.op == "select":
                questions = [substitute(s.question, self.answers)]
            else:
                lk = list_ref(s.question, self.answers, s.op_written or s.op)
                items = list(self.answers[lk - 1])
                questions = [substitute_item(s.question, lk, item, self.answers)
                             for item in items]
        except LineError as exc:
            raise self.fail(f"step {k}: {s.show()} {exc}") from None
        results = await self._call_all(k, s, key, questions)
        if s.op == "select":
            answer = results[0]
        elif s.op == "foreach":
            answer = results
        elif s.op == "foreach_merge":
            answer = flat_unique(results)
        else:
            answer = [item for item, r in zip(items, results, strict=True) if truthy(r)]
        self._step_event(k, s, questions, answer)
        return answer

    def _handler_key(self, k: int, s: StepLine) -> str:
        key = self.handlers.get(s.handler)
        if key is None:  # a model may change the case of a name
            folded = [n for n in self.handlers if n.lower() == s.handler.lower()]
            if len(folded) == 1:
                key = self.handlers[folded[0]]
        if key is None:
            known = ", ".join(self.handlers) or "none"
            raise self.fail(f"step {k}: unknown handler '{s.handler}' in {s.text!r} "
                            f"(handlers: {known})")
        return key

    # ------------------------------------------------------------ sub-calls

    def _spend(self, k: int, s: StepLine, n: int) -> None:
        """Take ``n`` handler calls from the top-level call's budget (``max_calls``), all
        of a step's at once, so a step that would go past it starts none."""
        budget = _BUDGET.get()
        if budget is None:  # pragma: no cover - run() always sets one
            return
        if budget.used + n > budget.limit:
            where = "" if budget.owner == self.name else f" of the top-level decompose " \
                                                         f"'{budget.owner}'"
            raise self.fail(f"step {k}: {s.show()} would make {n} handler call"
                            f"{'s' if n != 1 else ''} past max_calls {budget.limit}{where} "
                            f"({budget.used} made so far, nested calls and items included)")
        budget.used += n

    async def _call_all(self, k: int, s: StepLine, key: str, questions: list[str]) -> list[Any]:
        self._spend(k, s, len(questions))
        many = s.op != "select"
        if self.ctx.sequential or len(questions) < 2:
            return [await self._call(k, s, key, q, i if many else None)
                    for i, q in enumerate(questions)]
        tasks = [asyncio.create_task(self._call(k, s, key, q, i)) for i, q in enumerate(questions)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # a failed item (or this call cancelled) cancels the items still running
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in tasks:  # the first failure in item order (a cancelled item did not fail)
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]

    async def _call(self, k: int, s: StepLine, key: str, q: str, item: int | None) -> Any:
        target = self.ctx.handler(key)
        try:
            # in a task of its own: a nested decomposer call (recursion) starts on a fresh
            # stack, so depth costs no Python stack frames
            return await asyncio.create_task(self.ctx.call(
                key, {target.signature.params[0].name: q},
                call_span=self.spans.get(s.handler) or self.spans.get(self._bound_name(key)),
                caller=self.step.id))
        except RunError as exc:
            where = f"step {k} {s.show()} {clip(q, 80)}"
            if item is not None:
                where += f" (item {item + 1})"
            steps, cause = (exc.steps, exc.cause) if exc.cause is not None else ([], exc.message)
            self._step_event(k, s, [q], None, error=cause)
            raise self._chained(exc, [where, *steps], cause) from None

    def _bound_name(self, key: str) -> str:
        return next((n for n, v in self.handlers.items() if v == key), "")

    # ------------------------------------------------------------ errors and trace

    def _chained(self, exc: RunError, steps: list[str], cause: str) -> RunError:
        """Make ``exc`` name the chain of steps that led to it (kept: its span, detail and
        call chain, so the diagnostic still points at the failing declaration)."""
        exc.steps, exc.cause = steps, cause
        exc.message = f"decompose '{self.name}': {' → '.join([*steps, cause])}"
        exc.args = (exc.message,)
        return exc

    def fail(self, what: str) -> RunError:
        """A failure of this decomposer call itself (a bad line, a limit)."""
        self.event("decomp", f"✗ {what}", error=what)
        exc = RunError(f"decompose '{self.name}': {what}", span=self.decl.name_span,
                       handler=self.name)
        exc.cause = what
        return exc

    def _step_event(self, k: int, s: StepLine, questions: list[str], answer: Any, *,
               eoq: bool = False, error: str | None = None) -> None:
        if eoq:
            summary = f"[EOQ] → {clip(encode(answer), 70)}"
        elif error is not None:
            summary = f"QS{k} {s.show()} {clip(questions[0])} ✗ {error}"
        elif s.op == "select":
            summary = f"QS{k} {s.show()} {clip(questions[0])} → {clip(encode(answer), 40)}"
        else:
            summary = (f"QS{k} {s.show()} {clip(s.question)} ×{len(questions)} → "
                       f"{clip(encode(answer), 40)}")
        data: dict[str, Any] = {"qs": None if eoq else k, "line": s.text, "op": s.op,
                                "handler": s.handler, "questions": questions}
        if error is not None:
            data["error"] = error
        else:
            data["answer"] = answer
        self.event("decomp", summary, **data)
