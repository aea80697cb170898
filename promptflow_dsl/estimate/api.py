"""The estimate of a handler or an eval: :func:`estimate`, :func:`estimate_eval`.

Without data, a handler is estimated for one call whose inputs are unknown: its
prompts are counted with their fixed text only (a lower bound), and fan-outs over its
inputs have unknown sizes. With data (and always for an eval, whose ``data`` names its
rows), every selected row is estimated with its own values, and the totals add up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..check.program import CheckedProgram, EvalInfo, HandlerInfo
from .data import EstimateError, Rows, bind, eval_row, select_rows
from .models import Models
from .report import Line, cost_json, lines_of, render_lines, tally_json
from .tally import Tally, Usage
from .values import Known

FORMAT = "pflow-estimate/1"
#: rows :func:`estimate_eval` estimates at most (a seeded sample, scaled to all rows)
EVAL_MAX_ROWS = 1000


@dataclass
class Estimate:
    """What :func:`estimate` found. ``rows`` is the number of rows the totals stand for
    (``None``: one call without data); ``estimated_rows`` how many were estimated."""

    kind: str  # handler | eval
    name: str
    usage: Usage
    models: Models
    data: str | None = None
    rows: int | None = None
    estimated_rows: int | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[Line]:
        return lines_of(self.usage, self.models)

    def total(self) -> Tally:
        return self.usage.total

    def all_notes(self) -> list[str]:
        out = list(self.notes)
        for model_id in dict.fromkeys(m for _, m in self.usage.tallies if m):
            tok = self.models.tokenizer(model_id)
            if not tok.exact:
                why = f": {tok.note}" if tok.note else ""
                out.append(f"{model_id}: token counts are an {tok.name}{why}")
            if self.models.price(model_id) is None:
                out.append(f"{model_id}: no price in litellm's price map, so no cost")
        return list(dict.fromkeys([*out, *self.models.notes, *self.usage.notes]))

    def heading(self) -> str:
        if self.data is None:
            return f"{self.kind} {self.name}: one call, without data"
        sampled = (f" (estimated from {self.estimated_rows:,} sampled rows)"
                   if self.estimated_rows is not None and self.rows is not None
                   and self.estimated_rows < self.rows else "")
        return f"{self.kind} {self.name}: {self.rows:,} rows of {self.data}{sampled}"

    def render(self) -> str:
        """The estimate as text: a heading, the table, the notes."""
        parts = [self.heading(), "", render_lines(self.lines(), self.usage)]
        notes = self.all_notes()
        if notes:
            parts += ["", "notes:", *(f"- {n}" for n in notes)]
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        lines = self.lines()
        models: dict[str, Any] = {}
        for model_id in dict.fromkeys(m for _, m in self.usage.tallies if m):
            tok = self.models.tokenizer(model_id)
            price = self.models.price(model_id)
            models[model_id] = {
                "tokenizer": tok.name, "exact_tokens": tok.exact,
                "price": None if price is None else {"input_per_token": price.input,
                                                     "output_per_token": price.output}}
        return {
            "format": FORMAT,
            "target": {"kind": self.kind, "name": self.name},
            "data": None if self.data is None else {
                "path": self.data, "rows": self.rows, "estimated_rows": self.estimated_rows},
            "total": {**tally_json(self.total()), "cost": cost_json(self.usage.cost)},
            "handlers": [{"handler": ln.handler, "model": ln.model or None, **tally_json(ln.tally),
                          "cost": cost_json(ln.cost())} for ln in lines],
            "models": models,
            "notes": self.all_notes(),
        }


def resolve(program: CheckedProgram, name: str) -> HandlerInfo | EvalInfo:
    """The handler or eval ``name`` of the entry module. Raises :class:`EstimateError`
    with a did-you-mean and the names there are."""
    evals = getattr(program, "evals", {})
    if name in evals:
        return evals[name]  # type: ignore[no-any-return]
    try:
        return program.handler(name)
    except KeyError:
        pass
    from ..syntax.builder import suggest

    handlers, eval_names = sorted(program.handlers), sorted(evals)
    hint = suggest(name, handlers + eval_names)
    known = f"handlers: {', '.join(handlers) or 'none'}"
    if eval_names:
        known += f"; evals: {', '.join(eval_names)}"
    raise EstimateError(f"no handler or eval '{name}'{hint} ({known})")


def estimate(program: CheckedProgram, name: str, data: str | os.PathLike[str] | None = None, *,
             models: Mapping[str, str] | None = None, mapping: Mapping[str, str] | None = None,
             limit: int | None = None, sample: int | None = None, seed: int = 0,
             max_rows: int | None = None) -> Estimate:
    """Estimate handler or eval ``name`` of ``program`` before any model call.

    ``data``: a JSONL or CSV file (for a handler, columns bind parameters by name,
    ``mapping`` renames as ``--map param=column`` does; for an eval, it replaces the
    eval's own data). ``models``: ``--model`` overrides (model name → id).
    ``limit`` / ``sample`` + ``seed``: which rows, as a run chooses them; above
    ``max_rows`` rows, a seeded sample of that many is estimated and scaled up.

    Raises :class:`EstimateError` for an unknown name, unreadable data or a row that
    does not bind. Called where an event loop is running, it runs in a worker thread
    (the estimate evaluates expressions on a loop of its own).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(estimate, program, name, data, models=models, mapping=mapping,
                               limit=limit, sample=sample, seed=seed, max_rows=max_rows).result()
    from .kinds import KINDS
    from .walker import Estimator

    target = resolve(program, name)
    chosen = Models(program, dict(models or {}))
    est = Estimator(program, chosen, KINDS)
    try:
        if isinstance(target, HandlerInfo):
            if data is None:
                out = est.call(target.key, {})
                result = Estimate("handler", name, out.usage, chosen)
                if any(p.required for p in target.signature.params):
                    result.notes.append("inputs unknown (give --data): prompts are counted with "
                                        "their fixed text only, a lower bound")
                return result
            _check_columns(program, name, data, dict(mapping or {}))
            rows = select_rows(data, limit=limit, sample=sample, seed=seed, max_rows=max_rows)
            usage = _handler_rows(est, target, name, rows, dict(mapping or {}))
            kind = "handler"
        else:
            path = data if data is not None else target.data
            rows = select_rows(path, limit=limit, sample=sample, seed=seed, max_rows=max_rows)
            usage = _eval_rows(est, target, rows)
            kind = "eval"
    finally:
        est.close()
    if rows.scaled:
        usage = _scaled(usage, rows.total, len(rows.lines))
    return Estimate(kind, name, usage, chosen, data=rows.path, rows=rows.total,
                    estimated_rows=len(rows.lines))


def estimate_eval(program: CheckedProgram, eval_name: str,
                  data_path: str | os.PathLike[str] | None = None, *,
                  models: Mapping[str, str] | None = None, limit: int | None = None,
                  sample: int | None = None, seed: int = 0,
                  max_rows: int | None = EVAL_MAX_ROWS) -> dict[str, Any]:
    """The estimate of eval ``eval_name`` as JSON (the ``pflow estimate --json`` object),
    for a run's ``summary.json``: the eval's own data unless ``data_path`` is given, the
    rows a run with ``limit`` / ``sample`` + ``seed`` covers, at most ``max_rows`` of them
    estimated (a seeded sample, scaled to all). ``models`` are the run's ``--model``
    overrides. Raises :class:`EstimateError`."""
    if eval_name not in getattr(program, "evals", {}):
        known = ", ".join(sorted(getattr(program, "evals", {}))) or "none"
        raise EstimateError(f"no eval '{eval_name}' (evals: {known})")
    return estimate(program, eval_name, data_path, models=models, limit=limit, sample=sample,
                    seed=seed, max_rows=max_rows).to_json()


def _check_columns(program: CheckedProgram, name: str, data: str | os.PathLike[str],
                   mapping: dict[str, str]) -> None:
    """What ``pflow run --data`` checks before any call: ``--map`` parameters and columns,
    and a column for every required parameter."""
    from ..datasets import DatasetError
    from ..datasets.programs import check_handler_columns

    try:
        check_handler_columns(program, name, data, mapping)
    except DatasetError as exc:
        raise EstimateError(str(exc)) from None


def _handler_rows(est: Any, h: HandlerInfo, name: str, rows: Rows,
                  mapping: dict[str, str]) -> Usage:
    from ..datasets import DatasetError, dataset_format, map_columns

    usage = Usage()
    csv = dataset_format(rows.path) == "csv"
    for line, row in rows.items():
        where = f"{rows.path}:{line}"
        try:
            mapped = map_columns(row, mapping, path=rows.path, line=line)
        except DatasetError as exc:
            raise EstimateError(str(exc)) from None
        inputs = bind(h, name, mapped, where, text_cells=csv)
        usage = usage + est.call(h.key, {k: Known(v) for k, v in inputs.items()}).usage
    return usage


def _eval_rows(est: Any, info: EvalInfo, rows: Rows) -> Usage:
    from ..datasets import dataset_format

    module = est.program.modules[info.module_key]
    csv = dataset_format(rows.path) == "csv"
    usage = Usage()
    for line, row in rows.items():
        value = eval_row(row, info.row_type, f"{rows.path}:{line}", csv=csv)
        env: dict[str, Any] = {"row": Known(value)}
        run = est.eval(info.run, env, module)
        usage = usage + run.usage
        env["out"] = run.value
        for metric in info.metrics:
            usage = usage + est.eval(metric.expr, env, module).usage
    return usage


def _scaled(usage: Usage, total: int, estimated: int) -> Usage:
    def s(x: int | None) -> int | None:
        return None if x is None else round(x * total / estimated)

    def tally(t: Tally) -> Tally:
        return Tally(s(t.calls_min) or 0, s(t.calls_max), s(t.input_min) or 0, s(t.input_max),
                     s(t.output_typical) or 0, s(t.output_max))

    return Usage({k: tally(t) for k, t in usage.tallies.items()}, list(usage.notes),
                 tally(usage.total),
                 None if usage.cost is None else usage.cost.times(total / estimated))
