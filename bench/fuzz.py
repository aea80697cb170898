"""Fuzzing at scale: mutated programs through the checker, hostile replies and tool
results through the runtime; counts of crashes, hangs and leaks.

  check   N mutated programs (default 100,000), made from the project's examples by
          byte and token mutations (deletions, duplications, swaps, huge numbers,
          deep nesting, NUL and lone surrogates, hostile paths, template bombs), each
          through ``promptflow_dsl.loads``. A program must check or raise
          ``CompileError``; anything else is a crash.
  run     M hostile replies (default 10,000) from a scripted model to typed prompts
          (str, int, enum, record, list of records, optional), and hostile values
          from tools declared ``-> any``, each run to the end with its trace written.
          A run must return or raise a run error (``RunError``, ``InputError``).

Each item runs in a worker process (2 by default) watched by this one: an item whose
work takes more than --hang seconds of CPU (default 2), or that is still running after
max(5 x --hang, 10) seconds of wall time, is a hang (in the second case the worker is
killed and replaced); a worker whose resident memory passes --max-rss MiB (default 1024) or
whose open file descriptors grow by more than 64 is a leak. The summary prints the
counts and the first reproducers of each class (written to --out as JSON).

    python bench/fuzz.py [--programs 100000] [--replies 10000] [--workers 2]
                         [--seed 0] [--hang 2] [--only check,run] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

TOKENS = [
    "prompt", "tool", "flow", "type", "model", "route", "sketch", "decompose", "hooks",
    "eval", "test", "mock", "expect", "import", "{", "}", "(", ")", "[", "]", ":", ",",
    "->", "=", "==", "\"", "'", '"""', "{{", "}}", "{%", "%}", "#", "\n", "\\", "|",
    "str", "int", "float", "bool", "any", "list[", "none", "true", "false", "try",
    "else", "for", "in", "if", "max", "beam(", "when", "return", "data", "metric",
    "9" * 5000, "1e400", "-0", "\x00", "\ud800", "\udfff", "\u202e", "\ufeff",
    "[" * 1000, "(" * 500, "{" * 300, '"/dev/zero"', '"/dev/stdin"', '"../../../etc/passwd"',
    '"' + "a" * 5000 + '.txt"', "{{ 9**(9**9) }}", "{{ 'x'|center(2000000000) }}",
    "{{ range(10**9)|list }}", "{% for i in range(10**9) %}x{% endfor %}",
    "str(max_length=", "int(min=", "pattern=r\"(a+)+$\"",
]


# ----------------------------------------------------------------- mutations

def seeds() -> list[str]:
    out = []
    for path in sorted(EXAMPLES.rglob("*.pflow")):
        try:
            out.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return out


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        op = rng.randrange(8)
        i = rng.randrange(n + 1)
        j = min(n, i + rng.randint(1, 40))
        if op == 0 and n:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + text[i:j] * rng.randint(2, 50) + text[j:]
        elif op == 2:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op == 3 and n:
            text = text[:i] + chr(rng.randrange(0x20, 0x7F)) + text[i + 1:]
        elif op == 4:
            lines = text.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        elif op == 5:  # a number becomes huge, negative or odd
            digits = [k for k, c in enumerate(text) if c.isdigit()]
            if digits:
                k = rng.choice(digits)
                text = text[:k] + rng.choice(["9" * 4400, "-1", "0", "1e308", "99999999999"]) \
                    + text[k + 1:]
        elif op == 6:  # deep nesting around a span
            depth = rng.choice([50, 500, 2000])
            text = text[:i] + "(" * depth + text[i:j] + ")" * depth + text[j:]
        else:
            text = text[:i] + rng.choice(TOKENS) * rng.randint(1, 5) + text[j:]
    return text


# ----------------------------------------------------------------- run side

RUN_PROGRAM = '''
model default = "openai/fuzz" { api_base: "http://127.0.0.1:9/v1", api_key: "sk-fuzz-000000000000" }
type Item { name: str, n: int, tags: list[str] }
prompt as_text(x: str) -> str = "{{ x }}"
prompt as_int(x: str) -> int = "{{ x }}"
prompt as_choice(x: str) -> "a" | "b" | "c" = "{{ x }}"
prompt as_item(x: str) -> Item = "{{ x }}"
prompt as_items(x: str) -> list[Item] = "{{ x }}"
prompt as_maybe(x: str) -> Item? = "{{ x }}"
tool hostile(kind: str) -> any = python "fuzz_tools:hostile"
flow via_tool(kind: str) -> any {
  return hostile(kind=kind)
}
'''

TOOLS = '''
import datetime

def _deep(n):
    v = []
    for _ in range(n):
        v = [v]
    return v

def hostile(kind):
    if kind == "bytes": return b"\\xff\\x00"
    if kind == "set": return {1, 2}
    if kind == "datetime": return datetime.datetime(2026, 1, 1)
    if kind == "generator": return (i for i in range(3))
    if kind == "deep": return _deep(5000)
    if kind == "cyclic":
        a = []; a.append(a); return a
    if kind == "bigint": return 10 ** 5000
    if kind == "surrogate": return "a\\ud800b"
    if kind == "nan": return float("nan")
    if kind == "raise": raise RuntimeError("tool failed")
    return kind
'''

TOOL_KINDS = ["bytes", "set", "datetime", "generator", "deep", "cyclic", "bigint", "surrogate",
              "nan", "raise", "plain"]

HANDLERS = ["as_text", "as_int", "as_choice", "as_item", "as_items", "as_maybe"]


def hostile_reply(rng: random.Random) -> str:
    pieces = [
        "[" * rng.choice([10, 1000, 5000]), "{\"name\": " * rng.choice([1, 900]),
        "\ud800", "\udfff", "\x00", "9" * rng.choice([10, 4400, 20000]), "1e400", "NaN",
        "-Infinity", "{\"name\": \"x\", \"n\": 1, \"tags\": []}", "```json\n", "```",
        "{\"name\": \"x\", \"n\": 1e400, \"tags\": [1, 2]}", "true", "null", "a", "b",
        "{" * 3000 + "}" * 3000, "\"" * 1000, "\\u0000", "\\ud800", "x" * 300_000,
        "[{\"name\": \"y\", \"n\": 2, \"tags\": [\"t\"]}]", "<|im_end|>", "\n" * 1000,
    ]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))


# ----------------------------------------------------------------- workers

def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _check_item(text: str, base: str) -> str:
    import promptflow_dsl
    from promptflow_dsl.diagnostics import CompileError

    try:
        promptflow_dsl.loads(text, name="fuzz.pflow", base_dir=base)
    except CompileError:
        return "error"
    return "ok"


def _run_item(item: dict[str, Any], program: Any, trace_dir: str) -> str:
    import asyncio

    from promptflow_dsl.models.scripted import ScriptedBackend
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode
    from promptflow_dsl.runtime.errors import InputError, RunError

    backend = ScriptedBackend("openai/fuzz", item["replies"])
    config = RunConfig(backends={"openai/fuzz": backend}, cache=CacheMode.OFF,
                       trace_dir=Path(trace_dir), max_attempts=2)
    try:
        asyncio.run(program.arun(item["handler"], config=config, **item["inputs"]))
    except (RunError, InputError):
        return "error"
    return "ok"


def worker(conn: Connection, mode: str, base: str) -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    program = None
    trace_dir = tempfile.mkdtemp(prefix="pflow-fuzz-trace-")
    if mode == "run":
        import promptflow_dsl

        program = promptflow_dsl.load(Path(base) / "fuzz_run.pflow")
    else:  # imported before the first item, so that no item's time includes it
        import promptflow_dsl  # noqa: F401
        from promptflow_dsl.diagnostics import CompileError  # noqa: F401
    start_fds = _fds()
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        cpu = time.process_time()
        try:
            if mode == "check":
                outcome = _check_item(item, base)
            else:
                outcome = _run_item(item, program, trace_dir)
            detail = ""
        except BaseException as exc:  # noqa: BLE001 - this is what the fuzzer counts
            outcome = "crash"
            detail = "".join(traceback.format_exception_only(type(exc), exc))[-500:]
        for f in Path(trace_dir).iterdir():
            f.unlink(missing_ok=True)
        conn.send((outcome, detail, _rss_mib(), _fds() - start_fds, time.process_time() - cpu))


class Pool:
    def __init__(self, n: int, mode: str, base: str, hang: float, max_rss: float) -> None:
        self.mode, self.base, self.hang, self.max_rss = mode, base, hang, max_rss
        self.slots: list[tuple[mp.Process, Connection] | None] = [None] * n
        self.ctx = mp.get_context("spawn")

    def _start(self, i: int) -> tuple[mp.Process, Connection]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=worker, args=(child, self.mode, self.base), daemon=True)
        proc.start()
        self.slots[i] = (proc, parent)
        return proc, parent

    def _kill(self, i: int) -> None:
        slot = self.slots[i]
        if slot is not None:
            slot[0].kill()
            slot[0].join(5)
            self.slots[i] = None

    def run(self, items: list[Any], report: dict[str, Any]) -> None:
        pending = list(enumerate(items))[::-1]
        busy: dict[int, tuple[int, float]] = {}  # slot -> (item index, started)
        done = 0
        last = time.monotonic()
        while pending or busy:
            for i in range(len(self.slots)):
                if i not in busy and pending:
                    if self.slots[i] is None:
                        self._start(i)
                    slot = self.slots[i]
                    assert slot is not None
                    k, item = pending.pop()
                    slot[1].send(item)
                    busy[i] = (k, time.monotonic())
            conns = {self.slots[i][1]: i for i in busy if self.slots[i] is not None}  # type: ignore[index]
            ready = wait(list(conns), timeout=0.2)
            now = time.monotonic()
            for conn in ready:
                i = conns[conn]  # type: ignore[index]
                k, started = busy.pop(i)
                try:
                    outcome, detail, rss, fds, cpu = conn.recv()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    outcome, detail, rss, fds, cpu = "crash", "the worker died", 0.0, 0, 0.0
                    self._kill(i)
                # the item's own CPU time: on a loaded machine the wall time also counts
                # the other processes (an item that blocks is killed below, by wall time)
                if cpu > self.hang:
                    outcome, detail = "hang", f"{cpu:.1f} s of CPU"
                if rss > self.max_rss or fds > 64:
                    report["leaks"].append({"item": items[k], "rss_mib": round(rss), "fds": fds})
                    self._kill(i)
                self._count(report, outcome, detail, items[k])
                done += 1
            for i, (k, started) in list(busy.items()):
                if now - started > max(self.hang * 5, 10):
                    busy.pop(i)
                    self._kill(i)
                    self._count(report, "hang", f"killed after {now - started:.1f} s", items[k])
                    done += 1
            if now - last > 10:
                last = now
                print(f"  {self.mode}: {done}/{len(items)} · crashes {report['crash']} · "
                      f"hangs {report['hang']} · leaks {len(report['leaks'])}", flush=True)
        for i in range(len(self.slots)):
            slot = self.slots[i]
            if slot is not None:
                slot[1].send(None)
                slot[0].join(5)
                self._kill(i)

    @staticmethod
    def _count(report: dict[str, Any], outcome: str, detail: str, item: Any) -> None:
        report[outcome] = report.get(outcome, 0) + 1
        if outcome in ("crash", "hang"):
            key = re.sub(r"\d+(\.\d+)?", "N", detail.splitlines()[0][:120]) if detail \
                else outcome
            classes = report["classes"].setdefault(outcome, {})
            if key not in classes:
                shown = item if isinstance(item, dict) else item[:2000]
                classes[key] = {"count": 0, "example": shown, "detail": detail}
            classes[key]["count"] += 1


def new_report() -> dict[str, Any]:
    return {"ok": 0, "error": 0, "crash": 0, "hang": 0, "leaks": [], "classes": {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--programs", type=int, default=100_000)
    ap.add_argument("--replies", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang", type=float, default=2.0)
    ap.add_argument("--max-rss", type=float, default=1024.0)
    ap.add_argument("--only", default="check,run")
    ap.add_argument("--out", metavar="FILE")
    opts = ap.parse_args()
    rng = random.Random(opts.seed)
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    if "check" in opts.only:
        texts = seeds()
        items = [mutate(rng.choice(texts), rng) for _ in range(opts.programs)]
        report = new_report()
        Pool(opts.workers, "check", str(EXAMPLES), opts.hang, opts.max_rss).run(items, report)
        report["seconds"] = round(time.perf_counter() - t0, 1)
        results["check"] = report
    if "run" in opts.only:
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="pflow-fuzz-") as tmp:
            (Path(tmp) / "pflow.toml").write_text("")
            (Path(tmp) / "fuzz_run.pflow").write_text(RUN_PROGRAM)
            (Path(tmp) / "fuzz_tools.py").write_text(TOOLS)
            run_items: list[dict[str, Any]] = []
            for _ in range(opts.replies):
                if rng.random() < 0.1:
                    run_items.append({"handler": "via_tool",
                                      "inputs": {"kind": rng.choice(TOOL_KINDS)},
                                      "replies": []})
                else:
                    x = hostile_reply(rng) if rng.random() < 0.3 else "input"
                    run_items.append({"handler": rng.choice(HANDLERS), "inputs": {"x": x},
                                      "replies": [hostile_reply(rng), hostile_reply(rng)]})
            report = new_report()
            Pool(opts.workers, "run", tmp, opts.hang, opts.max_rss).run(run_items, report)
        report["seconds"] = round(time.perf_counter() - t1, 1)
        results["run"] = report
    for name, report in results.items():
        print(f"{name}: {report['ok']} ok, {report['error']} clean errors, "
              f"{report['crash']} crashes, {report['hang']} hangs, {len(report['leaks'])} leaks "
              f"({report['seconds']} s)")
        for outcome, classes in report["classes"].items():
            for key, info in list(classes.items())[:20]:
                print(f"  {outcome} ×{info['count']}: {key}")
    if opts.out:
        Path(opts.out).write_text(json.dumps(results, indent=2, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
