"""Running a ``decompose`` under ``protocol decomp`` (the published DecomP code's
behaviour), with best-first search over decompositions (``search beam(n)``).

A decomposition is a state: the lines written so far, their answers (as JSON text)
and a score (lower is better; 0 at the start).  The search keeps the states in a
min-heap by score and takes the best one each turn:

* a state with a line still to run runs it (its handler calls, the op, the
  sub-ops); a step that fails drops the state (the next best one is tried), else the
  state goes back with its answer and the same score;
* a finished state (``[EOQ]``) is the result: its last answer;
* a state with ``max_steps`` lines is finished as if the model had written ``[EOQ]``;
* otherwise the model proposes ``n`` next lines (one greedy, ``n - 1`` sampled); each
  distinct line makes a new state whose score grows by the line's score: the mean
  negative token log-probability of the line and its newline where the model gives
  log-probabilities, else the line's rank (0 for the greedy one).

With ``n = 1`` (the default) this is the greedy loop.  When no state is left the call
fails with the last reason a state was dropped.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...models.base import GenParams
from ...runtime.errors import RunError
from .ops import StepLine, clip
from .reference import (
    EOQ,
    RefError,
    RefLine,
    assignments,
    build_prompt,
    combine,
    dumps,
    filter_questions,
    final_answer,
    kind_of,
    normalize,
    parse,
    project_questions,
    select_question,
)
from .run import _Decomposition

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo
    from ...runtime.context import RunContext
    from ...runtime.trace import Step

#: tokens one decomposer line may take unless the model or the handler sets ``max_tokens``
#: (the reference's generator default)
REF_MAX_TOKENS = 100

#: the temperature of the sampled candidates of a search unless the program sets one
SAMPLE_TEMPERATURE = 1.0


def _decoded(answer: Any) -> Any:
    """A handler's answer as the reference keeps it: a string that is JSON is decoded."""
    if isinstance(answer, str):
        try:
            return json.loads(answer)
        except ValueError:
            return answer
    return answer


@dataclass
class _State:
    lines: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # JSON text, as the reference keeps them
    pending: str | None = None
    done: bool = False

    def fork(self) -> _State:
        return _State(list(self.lines), list(self.answers), self.pending, self.done)


class RefDecomposition(_Decomposition):
    """One decomposer call under ``protocol decomp``."""

    def __init__(self, ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any],
                 step: Step) -> None:
        super().__init__(ctx, h, inputs, step)
        names = [p.name for p in h.signature.params]
        raw = inputs.get("context") if "context" in names[1:] else None
        self.context: list[str] | None = (
            None if raw is None else [raw] if isinstance(raw, str) else [str(x) for x in raw])
        self.width = self.details.beam
        self.failure = ""

    # ------------------------------------------------------------ the search

    async def loop(self, depth: int) -> Any:
        params = self._params(REF_MAX_TOKENS)
        order = itertools.count()
        heap: list[tuple[float, int, _State]] = [(0.0, next(order), _State())]
        while heap:
            score, _, st = heapq.heappop(heap)
            if st.pending is not None:
                ran = await self._run_line(st)
                if ran is not None:
                    heapq.heappush(heap, (score, next(order), ran))
                continue
            if st.done:
                if not st.answers:
                    self._drop("the decomposer wrote [EOQ] before any step: there is no answer "
                               "to return")
                    continue
                self.event("decomp", f"[EOQ] → {clip(st.answers[-1], 70)}", qs=None,
                           line=EOQ, score=score, answer=final_answer(st.answers[-1]))
                return final_answer(st.answers[-1])
            if len(st.lines) >= self.max_steps:  # the reference ends a long chain itself
                end = st.fork()
                end.lines.append(EOQ)
                end.done = True
                self.event("decomp", f"max_steps {self.max_steps} reached: [EOQ] forced",
                           forced=True)
                heapq.heappush(heap, (score, next(order), end))
                continue
            prompt = build_prompt(self.fewshot, self.question, list(zip(st.lines, st.answers,
                                                                        strict=True)))
            for line, s in await self._propose(prompt, params, depth):
                new = st.fork()
                new.lines.append(line)
                if line == EOQ:
                    new.done = True
                else:
                    new.pending = line
                heapq.heappush(heap, (score + s, next(order), new))
        raise self.fail(self.failure or "no decomposition was left to try")

    def _drop(self, why: str) -> None:
        self.failure = why
        self.event("decomp", f"✗ {why}", error=why)

    # ------------------------------------------------------------ the model

    async def _propose(self, prompt: str, params: GenParams,
                       depth: int) -> list[tuple[str, float]]:
        """The distinct next lines and their scores (lower is better)."""
        raws: list[str] = []
        for i in range(self.width):
            p = params
            if i > 0:
                sampled = self.details.params.get("temperature")
                p = GenParams(stop=params.stop, max_tokens=params.max_tokens,
                              temperature=sampled if sampled else SAMPLE_TEMPERATURE, seed=i,
                              extra=params.extra)
            reply, hit, model_id = await self.ctx.complete(self.h, self.model_name, prompt, p)
            self.ledger.record(reply.usage, hit, model_id)
            raws.append(reply.text.split("\n", 1)[0])
        self.lines.extend(r.strip() for r in raws)
        self.ctx.annotate(self.step, reply="\n".join(self.lines),
                          extra={"depth": depth, "model_calls": self.ledger.calls,
                                 "prompt": prompt, "protocol": "decomp", "beam": self.width})
        scores = [float(i) for i in range(len(raws))]
        if self.width > 1:
            _, backend, _ = self.ctx.backend_for(self.h, self.model_name)
            if backend.capabilities.logprobs:
                rows, hit, model_id = await self.ctx.score(self.h, self.model_name, prompt,
                                                           [r + "\n" for r in raws])
                scores = [-r.logprob / r.tokens if r.tokens else 100.0 for r in rows]
        out: list[tuple[str, float]] = []
        seen: set[str] = set()
        for raw, s in sorted(zip(raws, scores, strict=True), key=lambda x: x[1]):
            line = raw.strip()
            if line not in seen:
                seen.add(line)
                out.append((line, s))
        return out

    # ------------------------------------------------------------ one step

    async def _run_line(self, st: _State) -> _State | None:
        """Run the pending line of ``st``: the state with its answer, or None (dropped)."""
        assert st.pending is not None
        k = len(st.answers) + 1
        line = st.pending
        try:
            parsed = parse(line)
            key = self.handlers.get(parsed.handler)  # exact, as the reference's router
            if key is None:
                raise RefError(f"unknown handler '{parsed.handler}' in {line!r} (handlers: "
                               f"{', '.join(self.handlers) or 'none'})")
            items, questions = self._questions(parsed, st.answers)
        except RefError as exc:
            self._drop(f"step {k}: {exc}")
            return None
        show = StepLine(line, op="select" if parsed.op == "select" else "foreach",
                        op_written=None if parsed.op == "select" else parsed.op,
                        handler=parsed.handler, question=parsed.question)
        try:
            results = [normalize(_decoded(r))
                       for r in await self._call_all(k, show, key, questions)]
            answer = combine(parsed.op, items, results)
        except RefError as exc:
            self._drop(f"step {k}: {show.show()} {exc}")
            return None
        except RunError as exc:
            self.failure = exc.message
            return None
        self._step_event(k, show, questions, answer)
        out = st.fork()
        out.pending = None
        out.answers.append(dumps(answer))
        return out

    def _questions(self, parsed: RefLine, answers: list[str]) -> tuple[list[Any], list[str]]:
        assigned = assignments(answers, self.context)
        kind = kind_of(parsed.op)
        if kind == "select":
            return [], [select_question(parsed.question, assigned)]
        if kind == "project":
            return project_questions(parsed.op, parsed.question, assigned)
        return filter_questions(parsed.op, parsed.question, assigned)

    async def _call(self, k: int, s: StepLine, key: str, q: str, item: int | None) -> Any:
        if self.context is None:
            return await super()._call(k, s, key, q, item)
        target = self.ctx.handler(key)
        if not any(p.name == "context" for p in target.signature.params[1:]):
            return await super()._call(k, s, key, q, item)
        args = {target.signature.params[0].name: q, "context": self.context}
        try:
            return await asyncio.create_task(self.ctx.call(
                key, args, call_span=self.spans.get(s.handler), caller=self.step.id))
        except RunError as exc:
            where = f"step {k} {s.show()} {clip(q, 80)}"
            if item is not None:
                where += f" (item {item + 1})"
            steps, cause = (exc.steps, exc.cause) if exc.cause is not None else ([], exc.message)
            self._step_event(k, s, [q], None, error=cause)
            raise self._chained(exc, [where, *steps], cause) from None
