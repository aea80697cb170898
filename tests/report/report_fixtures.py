"""Traces and run folders for the report tests (and bench/trace_view.py): a small
trace with one step of each interesting kind, and large ones of any size."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from promptflow_dsl.runtime.trace import Step, TokenUsage, Trace, compute_totals, write_trace

T0 = dt.datetime(2026, 12, 4, 12, 0, 0, tzinfo=dt.UTC)
RUN_ID = "20261204T120000.000Z-abc123"
EVIL = "<script>window.__pwned = 1</script></script><!-- \u2028\u2029 & <b>bold</b>"


def _at(ms: float) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=ms)


def _step(id_: str, parent: str | None, handler: str, kind: str, start: float, dur: float,
          **fields: Any) -> Step:
    fields.setdefault("status", "ok")
    return Step(id=id_, parent=parent, handler=handler, kind=kind, started_at=_at(start),
                latency_ms=dur, **fields)


def small_trace(run_id: str = RUN_ID) -> Trace:
    """A run with a prompt (messages, reply, value), a hooked prompt, a decomposition
    with sub-calls, a route, a sketch, a retried step and a failed one."""
    chat = dict(model="default", usage=TokenUsage(prompt_tokens=12, completion_tokens=5),
                cost=0.00002, calls=1, cache_hits=0, cache_hit=False)
    steps = [
        _step("s1", None, "main", "flow", 0, 900, inputs={"text": "hello"},
              output={"answer": "Paris"}),
        _step("s2", "s1", "summarize", "prompt", 5, 120, inputs={"text": "hello"},
              messages=[{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Summarize: hello"}],
              reply="The capital of France is Paris.", output="Paris", **chat),
        _step("s3", "s1", "evil", "prompt", 10, 80, reply=EVIL, output=EVIL,
              messages=[{"role": "user", "content": EVIL}], **chat),
        _step("s4", "s1", "calc_hooked", "prompt", 20, 300,
              reply="2 + 3 = [calc: 5] so five.", output="five", **chat,
              events=[{"type": "hook", "summary": "calc fired at '2 + 3 =' -> ' [calc: 5]' (insert)",
                       "hook": "calc", "trigger": "2 + 3 =", "position": 7, "action": "insert",
                       "output": " [calc: 5]", "dropped": ""}]),
        _step("s5", "s1", "solve", "decompose", 130, 400, output=42, model="default",
              events=[{"type": "decomp", "summary": "QS1 [lookup] capital? → Paris",
                       "qs": 1, "line": "QS1: [lookup] What is the capital?", "op": "call",
                       "handler": "lookup", "questions": ["What is the capital?"],
                       "answer": "Paris"},
                      {"type": "decomp", "summary": "[EOQ] → 42", "qs": None, "line": "[EOQ]",
                       "op": "eoq", "handler": None, "questions": [], "answer": 42}]),
        _step("s6", "s5", "lookup", "prompt", 140, 90, reply="Paris", output="Paris", **chat),
        _step("s7", "s1", "triage", "route", 540, 60, output="billing",
              events=[{"type": "route", "summary": "chose billing (cosine distance: ...)",
                       "expert": "billing", "router": "embedding",
                       "distances": {"billing": 0.12, "tech": 0.48, "sales": 0.61}}]),
        _step("s8", "s1", "fill", "sketch", 600, 120, model="default",
              output={"mood": "happy"},
              events=[{"type": "hole", "summary": "mood = \"happy\" (scored)", "hole": "mood",
                       "value": "happy", "decoder": "scored", "method": "scored",
                       "attempts": 1, "scores": {"happy": -0.2, "sad": -1.9, "angry": -3.1}}]),
        _step("s9", "s1", "extract", "prompt", 700, 150, attempts=3, reply="{\"n\": 3}",
              output={"n": 3}, **chat,
              messages=[{"role": "user", "content": "Count: a b c"},
                        {"role": "assistant", "content": "three"},
                        {"role": "user", "content": "Your answer was not valid JSON: "
                                                    "Expecting value. Reply again."},
                        {"role": "assistant", "content": "{}"},
                        {"role": "user", "content": "Your answer is missing field 'n'."}],
              events=[{"type": "retry", "summary": "attempt 1: not JSON: Expecting value"},
                      {"type": "retry", "summary": "attempt 2: field 'n' missing"}]),
        _step("s10", "s1", "flaky", "tool", 860, 30, status="failed",
              error="RuntimeError: the tool broke"),
    ]
    return Trace(run_id=run_id, program="app.pflow", entry="main", inputs={"text": "hello"},
                 output={"answer": "Paris"}, status="failed", error="RuntimeError: the tool broke",
                 started_at=T0, finished_at=_at(900), wall_ms=900.0, steps=steps,
                 totals=compute_totals(steps), models={"default": "echo"})


def big_trace(n: int, run_id: str = "20261204T120000.000Z-b19b19") -> Trace:
    """A run of ``n`` steps: a flow calling chunks of 50 flows, each with prompts that
    overlap in time (up to 8 in flight)."""
    steps = [_step("s1", None, "main", "flow", 0, n * 2.0)]
    parent = "s1"
    for i in range(2, n + 1):
        if i % 50 == 2:
            parent = f"s{i}"
            steps.append(_step(parent, "s1", f"batch_{i // 50}", "flow", i * 2.0, 100.0))
            continue
        steps.append(_step(f"s{i}", parent, f"ask_{i % 7}", "prompt", i * 2.0, 16.0,
                           model=f"m{i % 3}", reply=f"reply number {i}", output=f"value {i}",
                           messages=[{"role": "user", "content": f"question {i}"}],
                           usage=TokenUsage(prompt_tokens=20, completion_tokens=4),
                           cost=0.00001, calls=1, cache_hits=i % 5 == 0, cache_hit=i % 5 == 0,
                           status="failed" if i % 97 == 0 else "ok",
                           error="ValueError: bad" if i % 97 == 0 else None))
    return Trace(run_id=run_id, program="big.pflow", entry="main", started_at=T0,
                 finished_at=_at(n * 2.0), wall_ms=n * 2.0, steps=steps,
                 totals=compute_totals(steps))


def write_small(folder: Path) -> Path:
    return write_trace(small_trace(), folder)


def make_eval_run(root: Path, run_id: str, trace_dir: Path, *, flip: bool = False,
                  rows: int = 4) -> Path:
    """A finished eval run folder under ``root`` (``.pflow-cache/evals``) whose rows'
    traces are in ``trace_dir``; ``flip`` changes the metric of row 2."""
    folder = root / run_id
    folder.mkdir(parents=True)
    lines = []
    for r in range(1, rows + 1):
        tid = f"{run_id[:-6]}{r:06x}"
        trace = small_trace(tid)
        write_trace(trace, trace_dir, durable=False)
        exact = (r % 2 == 0) != (flip and r == 2)
        status = "failed" if r == rows else "ok"
        line: dict[str, Any] = {"row": r, "status": status,
                                "inputs": {"question": f"q{r} {EVIL}", "answer": "Paris"},
                                "trace_id": tid, "tokens": 17, "cost": 0.0001 * r,
                                "latency": 0.1 * r}
        if status == "ok":
            line.update(output=f"out {r}", metrics={"exact": exact, "words": r})
        else:
            line.update(error="RuntimeError: the tool broke", error_type="RunError")
        lines.append(json.dumps(line))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    meta = {"format": "pflow-run/1", "run_id": run_id, "dataset": {"path": "rows.jsonl"},
            "models": {"default": "echo"},
            "options": {"eval": "quiz", "program": "app.pflow"}}
    (folder / "meta.json").write_text(json.dumps(meta))
    ok = rows - 1
    summary = {"format": "pflow-summary/1", "run_id": run_id, "status": "complete",
               "rows": {"total": rows, "ok": ok, "failed": 1, "pending": 0},
               "metrics": {"exact": {"kind": "rate", "mean": 0.5, "scored": ok,
                                     "ci": [0.1, 0.9]},
                           "words": {"kind": "mean", "mean": 2.0, "scored": ok,
                                     "ci": [1.0, 3.0]}},
               "thresholds": [{"threshold": "exact >= 0.5", "actual": 0.5, "passed": True}],
               "passed": True, "tokens": 17 * rows, "cost": 0.001, "wall_time": 1.5}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder
