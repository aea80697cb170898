"""Performance benchmark: pflow vs plain asyncio + litellm vs plain asyncio + direct HTTP.

All three run the same workloads against the same loopback fake OpenAI-compatible
server (a separate process, fixed latency), in one run:

  (a) fan-out: 32 calls side by side, then one merge call
  (b) chain: 5 calls, each needing the previous one
  (c) batch: 200 inputs x a 3-step chain, 16 calls in flight

For each: wall time, ideal time (critical path x latency, or total calls x latency /
concurrency), efficiency = ideal / wall, client CPU time per call (medians of
``--repeat`` runs, the clients taking turns), and the requests the server counted in
every run (which must equal the expected number; -1 if the runs disagreed).  Also: start-up times of
`pflow check` / `pflow graph`, the cached re-run time per node, and local/smollm2
tokens/s through pflow vs raw llama-cpp-python (medians, alternating, new prompt each round).

    python bench/perf.py [--latency 0.05] [--repeat 5] [--skip-local] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
# the loopback fake server is no server kind: no profile probe (its GETs would be counted)
os.environ.setdefault("PFLOW_SERVER_PROBE", "0")

FAN, CHAIN, BATCH, BATCH_STEPS, BATCH_FLIGHT = 32, 5, 200, 3, 16

PROGRAM = '''
model default = "openai/bench" {{ api_base: "{base}", api_key_env: "PFLOW_BENCH_KEY" }}
prompt step(x: str) -> str = "{{{{ x }}}}"
prompt merge(xs: list[str]) -> str = "{{{{ xs | length }}}}"
flow fan(xs: list[str]) -> str {{
  ys = [step(x=x) for x in xs]
  return merge(xs=ys)
}}
flow chain5(x: str) -> str {{
  a = step(x=x)
  b = step(x=a)
  c = step(x=b)
  d = step(x=c)
  return step(x=d)
}}
flow chain3(x: str) -> str {{
  a = step(x=x)
  b = step(x=a)
  return step(x=b)
}}
flow batch(xs: list[str]) -> list[str] {{
  return [chain3(x=x) for x in xs]
}}
'''


# ---------------------------------------------------------------- the server process


def _serve(conn: Any, latency: float) -> None:
    from fakeserver import FakeOpenAI

    with FakeOpenAI() as fake:
        fake.set_latency(latency)
        conn.send(fake.base_url)
        while True:
            cmd = conn.recv()
            if cmd == "count":
                conn.send(fake.count)
            elif cmd == "reset":
                fake.reset()
                fake.set_latency(latency)
                conn.send(True)
            elif cmd == "stop":
                conn.send(True)
                return


class Server:
    def __init__(self, latency: float) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, latency), daemon=True)
        self.proc.start()
        self.base_url = self.conn.recv()

    def ask(self, cmd: str) -> Any:
        self.conn.send(cmd)
        return self.conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self.proc.join(5)


# ---------------------------------------------------------------- the three clients


class Measure:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Measure:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


def run_pflow(base: str, work: str) -> Measure:
    import promptflow_dsl as pf
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode

    folder = Path(tempfile.mkdtemp())
    (folder / "b.pflow").write_text(PROGRAM.format(base=base))
    program = pf.load(folder / "b.pflow")
    conc = BATCH_FLIGHT if work == "batch" else 64
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, concurrency=conc)
    with Measure() as m:
        if work == "fan":
            program.run("fan", config=config, xs=[f"x{i}" for i in range(FAN)])
        elif work == "chain":
            program.run("chain5", config=config, x="x")
        else:
            program.run("batch", config=config, xs=[f"x{i}" for i in range(BATCH)])
    return m


def _litellm_call() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from promptflow_dsl.models.remote import load_litellm

    litellm = load_litellm()

    async def call(base: str, text: str) -> str:
        r = await litellm.acompletion(model="openai/bench", api_base=base, api_key="sk-bench",
                                      messages=[{"role": "user", "content": text}],
                                      num_retries=0, max_retries=0)
        return r.choices[0].message.content
    return call


def _http_call() -> Any:
    import aiohttp

    session: dict[str, Any] = {}

    async def call(base: str, text: str) -> str:
        s = session.get("s")
        if s is None:
            s = session["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with s.post(base + "/chat/completions", json={
                "model": "bench", "messages": [{"role": "user", "content": text}]},
                headers={"Authorization": "Bearer sk-bench"}) as r:
            data = await r.json()
        return data["choices"][0]["message"]["content"]

    async def close() -> None:
        if "s" in session:
            await session.pop("s").close()
    call.close = close  # type: ignore[attr-defined]
    return call


def run_plain(base: str, work: str, call: Any) -> Measure:
    async def fan() -> None:
        ys = await asyncio.gather(*(call(base, f"x{i}") for i in range(FAN)))
        await call(base, str(len(ys)))

    async def chain(x: str, n: int, sem: asyncio.Semaphore | None = None) -> str:
        for _ in range(n):
            if sem is None:
                x = await call(base, x)
            else:
                async with sem:
                    x = await call(base, x)
        return x

    async def main() -> None:
        try:
            if work == "fan":
                await fan()
            elif work == "chain":
                await chain("x", CHAIN)
            else:
                sem = asyncio.Semaphore(BATCH_FLIGHT)
                await asyncio.gather(*(chain(f"x{i}", BATCH_STEPS, sem) for i in range(BATCH)))
        finally:
            close = getattr(call, "close", None)
            if close is not None:
                await close()

    with Measure() as m:
        asyncio.run(main())
    return m


# ---------------------------------------------------------------- the report


def expected_calls(work: str) -> int:
    return {"fan": FAN + 1, "chain": CHAIN, "batch": BATCH * BATCH_STEPS}[work]


def ideal(work: str, latency: float) -> float:
    if work == "fan":
        return 2 * latency
    if work == "chain":
        return CHAIN * latency
    return BATCH * BATCH_STEPS * latency / BATCH_FLIGHT


def startup(cmd: list[str], repeats: int = 5) -> float:
    """Median wall time of ``cmd`` in a fresh interpreter, with compiled bytecode
    cached as after a normal install (one warm-up run writes it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cached_rerun(base: str) -> tuple[float, int]:
    import promptflow_dsl as pf
    from promptflow_dsl.runtime import RunConfig

    folder = Path(tempfile.mkdtemp())
    (folder / "b.pflow").write_text(PROGRAM.format(base=base))
    program = pf.load(folder / "b.pflow")
    config = RunConfig(cache_dir=folder / "cache", write_trace=False)
    xs = [f"x{i}" for i in range(FAN)]
    program.run("fan", config=config, xs=xs)
    t = time.perf_counter()
    runs = 5
    for _ in range(runs):
        program.run("fan", config=config, xs=xs)
    per_node = (time.perf_counter() - t) / runs / (FAN + 1)
    return per_node, FAN + 1


LOCAL_PROMPTS = [f"Write a long story about {topic}." for topic in (
    "a lighthouse keeper and the sea", "a baker and the moon", "a fox in the city",
    "a pilot and a storm", "two chess players on a train", "a gardener and a robot",
    "a lost letter", "the last day of summer", "a clockmaker's apprentice",
    "a whale that sings")]


def local_tokens_per_second() -> tuple[float, float, float]:
    """Generation speed (completion tokens / seconds of the call) of local/smollm2
    through pflow and of raw llama-cpp-python, greedy, 128 tokens: the medians of
    each, and the median of the per-round ratios.

    The two alternate on the same prompts, one new prompt per round, so both pay
    for evaluating each prompt (as any real request does: a repeated identical
    prompt would be a cache hit in pflow and a KV-cache hit in raw llama-cpp), and
    the ratio of each round's pair cancels the drift of a shared machine's speed."""
    import promptflow_dsl as pf
    from promptflow_dsl.models.local import available_cores, find_gguf
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode

    folder = Path(tempfile.mkdtemp())
    (folder / "l.pflow").write_text(
        'model default = "local/smollm2" { max_tokens: 128, temperature: 0 }\n'
        'prompt story(x: str) -> str = "{{ x }}"\n')
    program = pf.load(folder / "l.pflow")
    config = RunConfig(cache=CacheMode.OFF, write_trace=False)
    program.run("story", config=config, x="warm up")  # loads the model
    import llama_cpp

    llm = llama_cpp.Llama(str(find_gguf()), n_ctx=2048, verbose=False, n_threads=available_cores())
    llm.create_chat_completion([{"role": "user", "content": "warm up"}], max_tokens=8)
    via_pflow, raw = [], []
    for prompt in LOCAL_PROMPTS:
        step = program.run("story", config=config, x=prompt).trace.steps[0]
        tokens = step.usage.completion_tokens if step.usage else 0
        via_pflow.append(tokens / (step.latency_ms / 1000))
        t = time.perf_counter()
        out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=128,
                                         temperature=0)
        raw.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
    ratios = [a / b for a, b in zip(via_pflow, raw, strict=True)]
    return statistics.median(via_pflow), statistics.median(raw), statistics.median(ratios)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=5,
                    help="runs per workload and client; the table shows medians (default 5)")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    os.environ["PFLOW_BENCH_KEY"] = "sk-bench"
    server = Server(args.latency)
    rows = []
    try:
        clients = {"pflow": lambda w: run_pflow(server.base_url, w),
                   "asyncio+litellm": lambda w: run_plain(server.base_url, w, _litellm_call()),
                   "asyncio+http": lambda w: run_plain(server.base_url, w, _http_call())}
        for fn in clients.values():
            fn("fan")  # warm imports once
        for work in ("fan", "chain", "batch"):
            n = expected_calls(work)
            runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in clients}
            for _ in range(args.repeat):  # the clients take turns: drifts hit all alike
                for name, fn in clients.items():
                    server.ask("reset")
                    m = fn(work)
                    runs[name].append((m.wall, m.cpu, server.ask("count")))
            for name, got in runs.items():
                wall = statistics.median(w for w, _, _ in got)
                cpu = statistics.median(c for _, c, _ in got)
                counts = {c for _, _, c in got}
                rows.append({"workload": work, "client": name, "wall_s": wall,
                             "ideal_s": ideal(work, args.latency),
                             "efficiency": ideal(work, args.latency) / wall,
                             "cpu_ms_per_call": cpu * 1000 / n,
                             "requests": counts.pop() if len(counts) == 1 else -1,
                             "expected": n})
        per_node, _ = cached_rerun(server.base_url)
    finally:
        server.stop()
    small = REPO / "examples" / "quickstart.pflow"
    check_s = startup([sys.executable, "-m", "promptflow_dsl", "check", str(small)])
    graph_s = startup([sys.executable, "-m", "promptflow_dsl", "graph", str(small), "brief"])
    print(f"{'workload':8} {'client':16} {'wall s':>7} {'ideal s':>7} {'eff':>5} "
          f"{'cpu ms/call':>11} {'requests':>9}")
    for r in rows:
        ok = "" if r["requests"] == r["expected"] else f" (expected {r['expected']})"
        print(f"{r['workload']:8} {r['client']:16} {r['wall_s']:7.3f} {r['ideal_s']:7.3f} "
              f"{r['efficiency']:5.2f} {r['cpu_ms_per_call']:11.2f} {r['requests']:9d}{ok}")
    print(f"\nstart-up: pflow check {check_s * 1000:.0f} ms, pflow graph {graph_s * 1000:.0f} ms "
          f"(median of 5, wall)")
    print(f"cached re-run: {per_node * 1000:.3f} ms per node, 0 requests")
    extra: dict[str, Any] = {"check_s": check_s, "graph_s": graph_s, "cached_ms_per_node": per_node * 1000}
    if not args.skip_local:
        via_pflow, raw, ratio = local_tokens_per_second()
        print(f"local/smollm2: {via_pflow:.1f} tok/s through pflow, {raw:.1f} tok/s raw "
              f"llama-cpp-python (medians); pflow / raw = {ratio:.2f} (median of "
              f"{len(LOCAL_PROMPTS)} paired rounds)")
        extra.update(local_pflow_tps=via_pflow, local_raw_tps=raw, local_ratio=ratio)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, **extra}, indent=2))
    bad = [r for r in rows if r["requests"] != r["expected"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
