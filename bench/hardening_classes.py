"""One fresh reproducer per class of hostile input, each through the CLI in a process of
its own: every one must end with exit 0, 1 or 2, a message that says where (the file
and line, or the file a command was given), no internal error or traceback, in under
5 s of CPU (plus, through litellm, what one ordinary call through litellm takes: its
import alone costs seconds).

The reproducers are variants, not the inputs the regression tests in tests/hardening/
use: another literal, another path, another shape of the same hostile thing. Run
classes talk to the loopback fake OpenAI server (tests/fakeserver.py), started here.
Printed: a table (class, exit status, CPU seconds, wall seconds, verdict, the first
line of the message) and the number of classes that fail.

    python bench/hardening_classes.py [--only WORD] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fakeserver import FakeOpenAI  # noqa: E402

KEY = "zz-live-9876543210fedcbaQWERTY"
CPU_LIMIT = 5.0
WALL_LIMIT = 60.0  # a hang guard only: the verdict is on CPU time (the machine is shared)


@dataclass
class Case:
    name: str
    files: dict[str, str | bytes]
    argv: list[str]
    where: str  # what the message must name
    exits: tuple[int, ...] = (1, 2)
    prepare: Callable[[FakeOpenAI, Path], None] | None = None
    extra: Callable[[FakeOpenAI, Path, str], str | None] | None = None  # more checks
    env: dict[str, str] = field(default_factory=dict)
    runs: int = 1
    baseline: str = ""  # a class whose CPU time is allowed on top (importing litellm)
    parallel: int = 1  # processes started at once (sharing the cache)


def model_line(fake: FakeOpenAI, client: str = "") -> str:
    extra = f', client: "{client}"' if client else ""
    return (f'model default = "openai/fake" {{ api_base: "{fake.base_url}", '
            f'api_key_env: "ZZ_CRED", num_retries: 1{extra} }}\n')


def run_argv(handler: str, *inputs: str, cache: bool = False) -> list[str]:
    argv = ["run", "p.pflow", handler, "--trace-dir", "traces", "--cache-dir", "cache"]
    for i in inputs:
        argv += ["-i", i]
    return argv + ([] if cache else ["--no-cache"])


def cases(fake: FakeOpenAI) -> list[Case]:
    m = model_line(fake)
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15)
    deflate_bomb = deflate.compress(b'{"choices": [' + b" " * (48 << 20)) + deflate.flush()
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    gzip_bomb = gz.compress(b'{"id": "' + b"z" * (40 << 20)) + gz.flush()

    def raw(body: bytes, times: int = 2, **headers: str) -> Callable[[FakeOpenAI, Path], None]:
        return lambda f, d: f.raw(body, times=times, headers=headers or None)

    def fifo(name: str) -> Callable[[FakeOpenAI, Path], None]:
        return lambda f, d: os.mkfifo(d / name)

    def key_hidden(f: FakeOpenAI, d: Path, err: str) -> str | None:
        traces = "".join(p.read_text(errors="replace") for p in (d / "traces").glob("*.json"))
        if KEY in err or KEY in traces:
            return "the key is in the clear"
        return None if "***" in err else "the echoed key is not shown masked"

    def posted_twice(f: FakeOpenAI, d: Path, err: str) -> str | None:
        posts = sum(1 for r in f.requests if r["method"] == "POST")
        return None if posts == 4 else f"{posts} requests for 2 runs of 2 attempts: cached?"

    return [
        # ---- check: exit 70 before
        Case("check: integer literal > 4,300 digits", {
            "p.pflow": 'flow f(x: int) -> int {\n  return x + ' + "7" * 6000 + '\n}\n'},
            ["check", "p.pflow"], "p.pflow:2:"),
        Case("check: path with a NUL", {
            "p.pflow": 'prompt p(x: str) -> str {\n  user "{{ x }}"\n  demos "d\\u0000.jsonl"\n}\n'},
            ["check", "p.pflow"], "p.pflow:3:"),
        Case("check: path with a lone surrogate", {
            "p.pflow": 'import "lib\\udcff.pflow"\nprompt p(x: str) -> str = "{{ x }}"\n'},
            ["check", "p.pflow"], "p.pflow:1:"),
        Case("check: path too long", {
            "p.pflow": 'prompt p(x: str) -> str {\n  user "{{ x }}"\n  demos "' + "d/" * 3000
                       + 'x.jsonl"\n}\n'},
            ["check", "p.pflow"], "p.pflow:3:"),
        Case("check: tool module ast.parse cannot hold", {
            "p.pflow": 'tool t(x: str) -> str = python "deep:t"\n',
            "deep.py": "def t(x):\n    return " + "~" * 200_000 + "1\n"},
            ["check", "p.pflow"], "p.pflow:1:"),
        # ---- check: hangs before
        Case("check: template constant folding", {
            "p.pflow": 'prompt p(x: str) -> str = "{{ (8 ** 8) ** (8 ** 8) }} {{ x }}"\n'},
            ["check", "p.pflow"], "p.pflow", exits=(0, 1, 2)),
        Case("check: template padding 2 GB", {
            "p.pflow": 'prompt p(x: str) -> str = "{{ \'y\' | center(1999999999) }}{{ x }}"\n'},
            ["check", "p.pflow"], "p.pflow", exits=(0, 1, 2)),
        Case("check: FIFO as eval data (CSV)", {
            "p.pflow": 'prompt p(x: str) -> str = "{{ x }}"\neval e {\n  data "rows.csv" as {x: str}\n'
                       '  run p(x=row.x)\n  metric m = 1\n}\n'},
            ["check", "p.pflow"], "p.pflow:3:", prepare=fifo("rows.csv")),
        Case("check: FIFO as import", {
            "p.pflow": 'import "other.pflow"\nprompt p(x: str) -> str = "{{ x }}"\n'},
            ["check", "p.pflow"], "p.pflow:1:", prepare=fifo("other.pflow")),
        Case("check: 1 MB sketch template", {
            "p.pflow": 'sketch s(x: str) -> str {\n  template """\n'
                       + ("{{ x }} [a: nosuchtype] words and [more words\n" * 24_000)
                       + '  """\n}\n'},
            ["check", "p.pflow"], "p.pflow", exits=(0, 1, 2)),
        Case("check: hook regex the timed engine cannot compile", {
            "p.pflow": 'hook h {\n  when r"(?:(?:(?:z{30}){30}){30}){30}"\n  run upper("!")\n}\n'
                       'prompt p(x: str) -> str {\n  user "{{ x }}"\n  hooks [h]\n}\n'},
            ["check", "p.pflow"], "p.pflow:2:"),
        Case("check: hook regex count past re's limit", {
            "p.pflow": 'hook h {\n  when r"[0-9]{0,4294967299}!"\n  run upper("!")\n}\n'
                       'prompt p(x: str) -> str {\n  user "{{ x }}"\n  hooks [h]\n}\n'},
            ["check", "p.pflow"], "p.pflow:2:"),
        Case("check: keyword glued to a name (promptp)", {
            "p.pflow": 'promptp(x: str) -> str = "{{ x }}"\n'},
            ["check", "p.pflow"], "p.pflow:1:"),
        Case("check: decomposer max_depth over the limit", {
            "p.pflow": 'tool up(question: str) -> str = python "tools:up"\n'
                       'decompose d(question: str) -> any {\n  handlers { d: d, up: up }\n'
                       '  prompt """\n    QC: x\n    QS: [up] x\n    A: "X"\n    QS: [EOQ]\n  """\n'
                       '  max_depth 100000\n}\n',
            "tools.py": "def up(question):\n    return question.upper()\n"},
            ["check", "p.pflow"], "p.pflow:10:"),
        # ---- run: exit 70 before
        Case("run: reply nested 3,000 deep", {
            "p.pflow": m + 'prompt j(x: str) -> list[any] = "j {{ x }}"\n'},
            run_argv("j", "x=a"), "p.pflow:2:",
            prepare=lambda f, d: f.set_replies(['{"a": ' * 3000 + "1" + "}" * 3000] * 4)),
        Case("run: input nested 3,000 deep", {
            "p.pflow": m + 'prompt j(x: list[any]) -> str = "j {{ x }}"\n'},
            run_argv("j", "x=" + "[" * 3000 + "]" * 3000), "input 'x'"),
        Case("run: lone surrogate from a tool", {
            "p.pflow": 'tool t(x: str) -> str = python "tools:t"\n',
            "tools.py": "def t(x):\n    return 'bad \\udfff here'\n"},
            run_argv("t", "x=a"), "", exits=(0,)),
        Case("run: int result over 4,300 digits", {
            "p.pflow": 'tool t(x: str) -> int = python "tools:t"\n',
            "tools.py": "def t(x):\n    return 3 ** 20000\n"},
            run_argv("t", "x=a"), "p.pflow:1:"),
        Case("run: tool -> any returns a frozenset", {
            "p.pflow": 'tool t(x: str) -> any = python "tools:t"\n',
            "tools.py": "def t(x):\n    return frozenset({1, 2})\n"},
            run_argv("t", "x=a"), "p.pflow:1:"),
        Case("run: tool -> any returns a cyclic dict", {
            "p.pflow": 'tool t(x: str) -> any = python "tools:t"\n',
            "tools.py": "def t(x):\n    d = {}\n    d['me'] = [d]\n    return d\n"},
            run_argv("t", "x=a"), "p.pflow:1:"),
        Case("run: usage with a dict and -inf", {"p.pflow": m + 'prompt s(x: str) -> str = "s {{ x }}"\n'},
             run_argv("s", "x=a"), "", exits=(0,),
             prepare=raw(json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {
                 "role": "assistant", "content": "ok"}}], "usage": {
                 "prompt_tokens": {"n": 1}, "completion_tokens": "-Infinity"}}).encode(), times=1)),
        # ---- other commands
        Case("pflow test: malformed recordings", {
            "p.pflow": 'prompt s(x: str) -> str = "s {{ x }}"\ntest "t" live {\n'
                       '  expect s(x="a") == "a"\n}\n',
            "p.pflow.replay.json": '{"format": 1, "tests": {"t": "not a list"}}'},
            ["test", "p.pflow"], "p.pflow.replay.json"),
        Case("pflow trace show: nested 20,000 deep", {
            "t.json": '{"schema_version": "pflow-trace/1", "steps": ' + '{"x": ' * 20_000
                      + "1" + "}" * 20_000 + "}"},
            ["trace", "show", "t.json"], "t.json"),
        Case("pflow cache clear: corrupt cache.db", {"cache/cache.db": os.urandom(8192)},
             ["cache", "clear", "--cache-dir", "cache"], "", exits=(0,)),
        # ---- run: hangs and unbounded use before
        Case("run: deflate bomb (built-in client)", {"p.pflow": m + 'prompt s(x: str) -> str = "s {{ x }}"\n'},
             run_argv("s", "x=a"), "p.pflow:2:", prepare=raw(deflate_bomb, **{"Content-Encoding": "deflate"}),
             env={"PFLOW_MAX_REPLY_BYTES": str(4 << 20)}),
        Case("baseline: one ordinary call through litellm", {
            "p.pflow": model_line(fake, "litellm") + 'prompt s(x: str) -> str = "s {{ x }}"\n'},
            run_argv("s", "x=a"), "", exits=(0,)),
        Case("run: gzip bomb (litellm)", {"p.pflow": model_line(fake, "litellm")
                                           + 'prompt s(x: str) -> str = "s {{ x }}"\n'},
             run_argv("s", "x=a"), "p.pflow:2:", prepare=raw(gzip_bomb, **{"Content-Encoding": "gzip"}),
             env={"PFLOW_MAX_REPLY_BYTES": str(4 << 20)},
             baseline="baseline: one ordinary call through litellm"),
        Case("run: 3 MB unclosed JSON reply", {
            "p.pflow": m + 'prompt j(x: str) -> list[int] = "j {{ x }}"\n'},
            run_argv("j", "x=a"), "p.pflow:2:",
            prepare=lambda f, d: f.set_replies(["[" * 150 + "[1, " * 750_000] * 4)),
        Case("run: decomposer foreach in recursion", {
            "p.pflow": 'model default = "echo"\ntool many(question: str) -> list[str] = python "tools:many"\n'
                       'decompose d(question: str) -> any {\n  handlers { d: d, many: many }\n'
                       '  prompt """\n    QC: x\n    QS: [many] x\n    A: ["a", "b"]\n'
                       '    QS: (foreach) [d] #1\n    A: [1]\n    QS: [EOQ]\n  """\n'
                       '  max_depth 60\n  max_steps 30\n}\n',
            "tools.py": "def many(question):\n    return [str(i) for i in range(40)]\n"},
            run_argv("d", "question=go"), "p.pflow", exits=(0, 1, 2)),
        # ---- wrong or unsafe before
        Case("run: malformed 200 not cached", {"p.pflow": m + 'prompt s(x: str) -> str = "s {{ x }}"\n'},
             run_argv("s", "x=a", cache=True), "p.pflow:2:", runs=2,
             prepare=raw(b'{"choices": [{"index": 0, "message": 42}]}', times=4),
             extra=posted_twice),
        Case("run: key echoed by the server", {"p.pflow": m + 'prompt s(x: str) -> str = "s {{ x }}"\n'},
             run_argv("s", "x=a"), "p.pflow:2:",
             prepare=lambda f, d: f.echo_key(times=2), extra=key_hidden),
        Case("run: two processes, one cache, one request", {
            "p.pflow": m + 'prompt s(x: str) -> str = "s {{ x }}"\n'},
            run_argv("s", "x=same", cache=True), "", exits=(0,), parallel=2,
            prepare=lambda f, d: f.set_latency(1.5),
            extra=lambda f, d, err: None if sum(1 for r in f.requests if r["method"] == "POST") == 1
            else "the same request was sent by both processes"),
        Case("run: str(pattern=) too large to compile", {
            "p.pflow": m + 'type T { code: str(pattern="q{4294967295}") }\n'
                           'prompt t(x: str) -> T = "t {{ x }}"\n'},
            run_argv("t", "x=a"), "p.pflow:",
            prepare=lambda f, d: f.set_replies(['{"code": "q"}'] * 4)),
        Case("check: planted parser cache", {"p.pflow": 'prompt s(x: str) -> str = "s {{ x }}"\n'},
             ["check", "p.pflow"], "", exits=(0,), prepare=plant_parser_cache,
             extra=lambda f, d, err: "the planted cache ran" if (d / "pwned").exists() else None),
    ]


class _Plant:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def plant_parser_cache(fake: FakeOpenAI, d: Path) -> None:
    import pickle

    cache = d / "pcache"
    os.environ["PFLOW_PARSER_CACHE_DIR"] = str(cache)
    subprocess.run([sys.executable, "-m", "promptflow_dsl", "check", "p.pflow"], cwd=d,
                   capture_output=True, timeout=WALL_LIMIT)  # makes the cache and its key
    evil = pickle.dumps(_Plant(str(d / "pwned")))
    for path in cache.iterdir():
        if not path.name.endswith(".key"):  # the cached tables replaced by a pickle
            path.write_bytes(evil)


MEMORY_LIMIT = 2 << 30
"""Address space a reproducer may take (past it Python raises MemoryError): a class that
would eat all memory on a shared machine fails here instead."""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_case(case: Case, fake: FakeOpenAI, root: Path, cpu_of: dict[str, float]) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(dir=root))
    for name, content in case.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
    fake.reset()
    saved = os.environ.get("PFLOW_PARSER_CACHE_DIR")
    if case.prepare is not None:
        case.prepare(fake, work)
    env = {**os.environ, "NO_COLOR": "1", "PFLOW_SERVER_PROBE": "0", "ZZ_CRED": KEY,
           **case.env}
    fake.require_key(KEY)
    codes: list[int] = []
    err = ""
    cpu = wall = 0.0
    for _ in range(case.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-m", "promptflow_dsl", *case.argv], cwd=work,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, errors="replace", preexec_fn=_limit_memory)
                 for _ in range(case.parallel)]
        for proc in procs:
            try:
                out, errs = proc.communicate(timeout=WALL_LIMIT)
                codes.append(proc.returncode)
                err = errs + out
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                codes.append(-1)
                err = f"still running after {WALL_LIMIT:.0f} s"
        wall += time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if saved is None:
        os.environ.pop("PFLOW_PARSER_CACHE_DIR", None)
    else:
        os.environ["PFLOW_PARSER_CACHE_DIR"] = saved
    problems = []
    if any(c not in case.exits for c in codes):
        problems.append(f"exit {codes} (wanted {'/'.join(map(str, case.exits))})")
    if "internal error" in err or "Traceback" in err:
        problems.append("internal error")
    if case.where and case.where not in err:
        problems.append(f"message does not name {case.where}")
    allowed = CPU_LIMIT + cpu_of.get(case.baseline, 0.0)
    cpu /= case.parallel
    if cpu / case.runs > allowed and not case.name.startswith("baseline"):
        problems.append(f"{cpu / case.runs:.1f} s of CPU (allowed {allowed:.1f})")
    cpu_of[case.name] = cpu / case.runs
    if case.extra is not None:
        more = case.extra(fake, work, err)
        if more:
            problems.append(more)
    first = next((line for line in err.splitlines() if line.strip()), "(no message)")
    return {"class": case.name, "exit": codes[-1], "cpu": round(cpu / case.runs, 2),
            "wall": round(wall / case.runs, 2), "ok": not problems,
            "problems": problems, "message": first[:150]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="run only the classes whose name holds this")
    ap.add_argument("--out", metavar="FILE", help="write the rows as JSON")
    args = ap.parse_args(argv)
    rows = []
    cpu_of: dict[str, float] = {}
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        for case in cases(fake):
            if args.only and args.only not in case.name and not case.name.startswith("baseline"):
                continue
            row = run_case(case, fake, Path(tmp), cpu_of)
            rows.append(row)
            verdict = "ok" if row["ok"] else "FAIL: " + "; ".join(row["problems"])
            print(f"{row['class'][:48]:<48} exit {row['exit']:>2}  cpu {row['cpu']:5.2f}s  "
                  f"wall {row['wall']:5.2f}s  {verdict}\n    {row['message']}", flush=True)
    failed = sum(1 for r in rows if not r["ok"])
    print(f"\n{len(rows)} classes, {failed} failing")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
