"""Benchmark of the run side of datasets: ``pflow run --data`` and ``pflow eval`` over
many rows, against the loopback fake OpenAI server (tests/fakeserver.py, run in this
process, answering after ``--latency`` seconds; every client runs in a process of its
own).

  time     10,000 rows x a 3-call chain at 64 in flight (three distinct requests per
           row): ``pflow run --data`` (cache and traces off, then traces on, then
           cache and traces on: an empty cache, every reply stored) against plain
           asyncio + aiohttp making the same 30,000 calls with the same limit; the
           pflow figures are process wall times (start-up included)
  rss      peak RSS of ``pflow run --data`` (traces written, cache off, then on) at
           10,000 and at 100,000 rows, and the ratios
  resume   a finished 100,000-row ``pflow eval`` run whose last 100 result lines were
           lost: time from starting ``pflow eval --resume`` to its first model call

    python bench/program_rows.py [--rows 10000] [--big 100000] [--only time,rss,resume]
                                 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
# the loopback fake server is no server kind: no profile probe (its GETs would be counted)
os.environ.setdefault("PFLOW_SERVER_PROBE", "0")

CHAIN = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-bench-0000000000" }}
type Row {{ id: int, text: str }}
prompt step(text: str) -> str = "{{{{ text }}}}"
prompt one(text: str) -> str = "1 {{{{ text }}}}"
prompt two(text: str) -> str = "2 {{{{ text }}}}"
prompt three(text: str) -> str = "3 {{{{ text }}}}"
flow chain(text: str) -> str {{
  a = one(text=text)
  b = two(text=a)
  return three(text=b)
}}
eval echoes {{
  data "rows.jsonl" as Row
  run step(text=row.text)
  metric ok = out == row.text
}}
'''

BASELINE = '''
import asyncio, json, sys, time
import aiohttp

async def main(base, rows, limit):
    sem = asyncio.Semaphore(limit)
    async with aiohttp.ClientSession() as session:
        async def call(text):
            async with sem:
                async with session.post(base + "/chat/completions", json={
                        "model": "fake", "messages": [{"role": "user", "content": text}]},
                        headers={"Authorization": "Bearer sk-bench"}) as r:
                    body = await r.json()
            return body["choices"][0]["message"]["content"]

        async def row(text):
            return await call("3 " + await call("2 " + await call("1 " + text)))

        t0 = time.perf_counter()
        await asyncio.gather(*(row(f"row {i} " + "x" * 100) for i in range(rows)))
        return time.perf_counter() - t0

print(json.dumps({"wall": asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))}))
'''

RSS = '''
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(json.dumps({"wall": time.perf_counter() - t0, "code": code,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
'''


def write_rows(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "text": f"row {i} " + "x" * 100}) + "\n")


def pflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "promptflow_dsl", *args]


def measured(cmd: list[str], cwd: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", RSS, *cmd], cwd=cwd, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def project(base: str, folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pflow.toml").write_text("")
    (folder / "b.pflow").write_text(CHAIN.format(base=base))
    write_rows(folder / "rows.jsonl", rows)
    return folder


def bench_time(base: str, tmp: Path, rows: int) -> dict[str, Any]:
    p = project(base, tmp / "time", rows)
    base_out = subprocess.run([sys.executable, "-c", BASELINE, base, str(rows), "64"],
                              check=True, capture_output=True, text=True).stdout
    baseline = json.loads(base_out)["wall"]
    out: dict[str, Any] = {"rows": rows, "calls": 3 * rows, "baseline_s": round(baseline, 2)}
    variants = {"no_cache_no_trace": ["--no-cache", "--no-trace"], "traces": ["--no-cache"],
                "cache_and_traces": []}
    for name, extra in variants.items():
        for junk in ("out.jsonl",):
            (p / junk).unlink(missing_ok=True)
        r = measured(pflow("run", "b.pflow", "chain", "--data", "rows.jsonl", "--out",
                           "out.jsonl", "--concurrency", "64", "-q", *extra), p)
        out[name] = {"wall_s": round(r["wall"], 2), "ratio": round(r["wall"] / baseline, 3)}
    return out


def bench_rss(base: str, tmp: Path, small: int, big: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cache in (False, True):
        got = {}
        for n in (small, big):
            p = project(base, tmp / f"rss-{n}-{cache}", n)
            extra = [] if cache else ["--no-cache"]
            got[n] = measured(pflow("run", "b.pflow", "step", "--data", "rows.jsonl", "--out",
                                    "out.jsonl", "--concurrency", "64", "-q", *extra), p)
        key = "cache_on" if cache else "cache_off"
        out[key] = {f"rss_{n}_mib": round(got[n]["peak_rss_kb"] / 1024, 1) for n in got}
        out[key]["ratio"] = round(got[big]["peak_rss_kb"] / got[small]["peak_rss_kb"], 3)
        out[key]["wall_s"] = {n: round(got[n]["wall"], 1) for n in got}
    return out


def bench_resume(server: Any, tmp: Path, big: int) -> dict[str, Any]:
    p = project(server.base_url, tmp / "resume", big)
    subprocess.run(pflow("eval", "b.pflow", "-q", "--no-trace", "--concurrency", "64"),
                   cwd=p, check=True, capture_output=True)
    [folder] = list((p / ".pflow-cache" / "evals").iterdir())
    results = folder / "results.jsonl"
    lines = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:-100]))
    seen = server.count
    t0 = time.perf_counter()
    proc = subprocess.Popen(pflow("eval", "b.pflow", "-q", "--no-trace", "--no-cache",
                                  "--resume", folder.name), cwd=p, stdout=subprocess.DEVNULL)
    first = None
    while proc.poll() is None or first is None:
        if server.count > seen and first is None:
            first = time.perf_counter() - t0
        if proc.poll() is not None and first is None:
            break
        time.sleep(0.001)
    total = time.perf_counter() - t0
    return {"rows": big, "first_call_s": None if first is None else round(first, 3),
            "total_s": round(total, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--only", default="time,rss,resume")
    ap.add_argument("--latency", type=float, default=0.05,
                    help="the fake server's delay before each answer (default 0.05 s)")
    ap.add_argument("--dir", help="where to put the projects (default: a temporary folder)")
    ap.add_argument("--json")
    opts = ap.parse_args()
    from fakeserver import FakeOpenAI

    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=opts.dir) as tmpdir, FakeOpenAI() as server:
        tmp = Path(tmpdir)
        server.set_latency(opts.latency)
        only = set(opts.only.split(","))
        if "time" in only:
            report["time"] = bench_time(server.base_url, tmp, opts.rows)
            print(json.dumps({"time": report["time"]}), flush=True)
        if "rss" in only:
            report["rss"] = bench_rss(server.base_url, tmp, opts.rows, opts.big)
            print(json.dumps({"rss": report["rss"]}), flush=True)
        if "resume" in only:
            report["resume"] = bench_resume(server, tmp, opts.big)
            print(json.dumps({"resume": report["resume"]}), flush=True)
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
