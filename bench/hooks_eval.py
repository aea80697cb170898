"""Benchmark: a word-problem prompt with and without the calculator hook (std.hooks.calc).

    python bench/hooks_eval.py                      # local/smollm2, every problem
    python bench/hooks_eval.py --limit 5 --max-tokens 64
    python bench/hooks_eval.py --model openai/gpt-4o-mini
    python bench/hooks_eval.py --model openai/my-model --api-base http://127.0.0.1:8000/v1 --completion

The same few-shot prompt runs twice per problem (temperature 0, cache off): plainly, and
with ``hooks [hooks.calc]``, which inserts the exact value whenever the model writes
``<arithmetic> =``. Reported side by side: accuracy (the number after "the answer is",
else the last number written), wall time, tokens, firings, and the latency the hook loop
adds per firing, from the trace events of each firing:

* ``close_ms``   — from detecting the trigger to the stream being closed (the model stops),
* ``program_ms`` — the hook's program (here a Python tool),
* ``resume_ms``  — from the program's end to the first chunk of the continuation (the
  continuation request; on local/smollm2, re-reading the prompt and the text so far).

Their sum is the stall a firing causes; minus one normal inter-token interval (the
measured decoding speed on local/smollm2), it is the extra latency per firing. On
local/smollm2 ``--reuse-kv`` lets a continuation reuse the KV cache of the text it
shares with the previous generation. Problems: ``bench/data/hooks/word_problems.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "hooks" / "word_problems.jsonl"

PROGRAM = '''
model default = {model}
import std.hooks

prompt plain(problem: str) -> str {{
  system "You solve arithmetic word problems. Write each computation as an equation, then give the answer."
  user "Problem: Tom has 3 bags with 15 apples in each bag. How many apples does he have?"
  assistant "Tom has 3 bags of 15 apples, so 3 * 15 = 45. The answer is 45."
  user "Problem: A shop had 120 cups and sold 45. How many cups are left?"
  assistant "The shop had 120 cups and sold 45, so 120 - 45 = 75. The answer is 75."
  user "Problem: {{{{ problem }}}}"
  params {{ stop: ["\\n\\n", "Problem:"] }}
}}

prompt hooked(problem: str) -> str {{
  system "You solve arithmetic word problems. Write each computation as an equation, then give the answer."
  user "Problem: Tom has 3 bags with 15 apples in each bag. How many apples does he have?"
  assistant "Tom has 3 bags of 15 apples, so 3 * 15 = 45. The answer is 45."
  user "Problem: A shop had 120 cups and sold 45. How many cups are left?"
  assistant "The shop had 120 cups and sold 45, so 120 - 45 = 75. The answer is 75."
  user "Problem: {{{{ problem }}}}"
  params {{ stop: ["\\n\\n", "Problem:"] }}
  hooks [hooks.calc]
}}
'''

_ANSWER = re.compile(r"answer is\s*:?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract(text: str) -> float | None:
    """The model's answer: the number after "the answer is", else the last number."""
    m = _ANSWER.search(text)
    raw = m.group(1) if m else (_NUMBER.findall(text) or [None])[-1]
    if raw is None:
        return None
    try:
        return float(raw.replace(",", "").rstrip("."))
    except ValueError:
        return None


def model_decl(args: argparse.Namespace) -> str:
    params: dict[str, Any] = {"temperature": 0, "max_tokens": args.max_tokens}
    if args.api_base:
        params["api_base"] = args.api_base
        if args.completion:
            params["completion"] = True
    body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items())
    return f"{json.dumps(args.model)} {{ {body} }}"


async def run_one(program: Any, handler: str, problem: str, config: Any) -> dict[str, Any]:
    started = time.perf_counter()
    result = await program.arun(handler, config=config, problem=problem)
    wall = time.perf_counter() - started
    step = result.trace.steps[0]
    fires = [e for e in step.events if e.get("type") == "hook"]
    return {"text": result.value, "wall_s": wall,
            "tokens": step.usage.completion_tokens if step.usage else 0,
            "fires": [{k: e.get(k) for k in ("trigger", "output", "close_ms", "program_ms",
                                            "resume_ms")} for e in fires]}


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"mean {statistics.fmean(values):.0f}  median {statistics.median(values):.0f}"


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="local/smollm2", help="model id (default local/smollm2)")
    ap.add_argument("--api-base", default=None, help="an OpenAI-compatible server for --model")
    ap.add_argument("--completion", action="store_true",
                    help="the --api-base server has /v1/completions (raw-completion continuation)")
    ap.add_argument("--max-tokens", type=int, default=96, help="per problem (default 96)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=None, help="write every result as JSON here")
    ap.add_argument("--quiet", action="store_true", help="no per-problem table")
    ap.add_argument("--reuse-kv", action="store_true",
                    help="local/smollm2 only: reuse the KV cache of the common prefix, so a "
                         "continuation evaluates only its new tokens (off by default in pflow "
                         "for determinism)")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(HERE.parent))
    import promptflow_dsl as pf
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode

    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    program = pf.loads(PROGRAM.format(model=model_decl(args)), name="hooks_eval.pflow",
                       base_dir=HERE)
    config = RunConfig(cache=CacheMode.OFF, write_trace=False)
    decode_ms = None
    if args.model == "local/smollm2":
        from promptflow_dsl.models.registry import local_backend

        local = local_backend()
        local.reuse_kv = bool(args.reuse_kv)  # type: ignore[attr-defined]
        speed = await local.tokens_per_second(max_tokens=48)  # type: ignore[attr-defined]
        decode_ms = 1000 / speed["tokens_per_second"] if speed["tokens_per_second"] else None
    await run_one(program, "plain", "What is 2 + 2?", config)  # load the model first

    results = []
    if not args.quiet:
        print(f"{'id':>3}  {'answer':>7}  {'plain':>9}  {'hooked':>9}  fires  problem")
    for row in rows:
        plain = await run_one(program, "plain", row["problem"], config)
        hooked = await run_one(program, "hooked", row["problem"], config)
        for r in (plain, hooked):
            r["pred"] = extract(r["text"])
            r["correct"] = r["pred"] is not None and abs(r["pred"] - row["answer"]) < 1e-6
        results.append({**row, "plain": plain, "hooked": hooked})
        if not args.quiet:
            def show(r: dict[str, Any]) -> str:
                p = "-" if r["pred"] is None else f"{r['pred']:g}"
                return f"{p:>7} {'✓' if r['correct'] else '✗'}"
            print(f"{row['id']:>3}  {row['answer']:>7}  {show(plain)}  {show(hooked)}  "
                  f"{len(hooked['fires']):>5}  {row['problem'][:60]}")

    n = len(results)
    fires = [f for r in results for f in r["hooked"]["fires"]]
    close = [f["close_ms"] or 0.0 for f in fires]
    program_ms = [f["program_ms"] or 0.0 for f in fires]
    resume = [f["resume_ms"] for f in fires if f.get("resume_ms") is not None]
    stall = [(f["close_ms"] or 0.0) + (f["program_ms"] or 0.0) + f["resume_ms"]
             for f in fires if f.get("resume_ms") is not None]
    plain_tokens = sum(r["plain"]["tokens"] for r in results)
    plain_wall = sum(r["plain"]["wall_s"] for r in results)
    # one ordinary inter-token interval: measured decoding speed (local model), else the
    # plain prompt's wall time per token (an over-estimate: it includes the prompt)
    token_ms = decode_ms or (1000 * plain_wall / plain_tokens if plain_tokens else 0.0)
    summary = {
        "model": args.model, "problems": n, "max_tokens": args.max_tokens,
        "reuse_kv": bool(args.reuse_kv),
        "accuracy_plain": sum(r["plain"]["correct"] for r in results) / n if n else 0.0,
        "accuracy_hooked": sum(r["hooked"]["correct"] for r in results) / n if n else 0.0,
        "wall_s_plain": plain_wall,
        "wall_s_hooked": sum(r["hooked"]["wall_s"] for r in results),
        "tokens_plain": plain_tokens,
        "tokens_hooked": sum(r["hooked"]["tokens"] for r in results),
        "fires": len(fires),
        "fires_inserting": sum(1 for f in fires if f["output"]),
        "ms_per_token": token_ms,
        "close_ms_mean": statistics.fmean(close) if close else None,
        "program_ms_mean": statistics.fmean(program_ms) if program_ms else None,
        "resume_ms_mean": statistics.fmean(resume) if resume else None,
        "stall_ms_mean": statistics.fmean(stall) if stall else None,
        "stall_ms_median": statistics.median(stall) if stall else None,
        "extra_ms_per_firing": (statistics.fmean(stall) - token_ms) if stall else None,
    }
    print()
    print(f"model {args.model}, {n} problems, max_tokens {args.max_tokens}, temperature 0"
          + (", reuse_kv" if args.reuse_kv else ""))
    print(f"{'':24}{'plain':>12}{'with calc hook':>18}")
    print(f"{'accuracy':24}{summary['accuracy_plain']:>12.1%}{summary['accuracy_hooked']:>18.1%}")
    print(f"{'correct':24}{sum(r['plain']['correct'] for r in results):>12}"
          f"{sum(r['hooked']['correct'] for r in results):>18}")
    print(f"{'wall time (s)':24}{summary['wall_s_plain']:>12.1f}{summary['wall_s_hooked']:>18.1f}")
    print(f"{'generated tokens':24}{summary['tokens_plain']:>12}{summary['tokens_hooked']:>18}")
    print(f"{'firings':24}{'':>12}{len(fires):>18}  ({summary['fires_inserting']} inserted a value)")
    print()
    print(f"per firing (ms): close {_stats(close)} | program {_stats(program_ms)} | "
          f"resume {_stats(resume)}")
    print(f"stall per firing (ms): {_stats(stall)}; one token takes {token_ms:.1f} ms, so "
          f"the hook loop adds about {summary['extra_ms_per_firing'] or 0:.0f} ms per firing")
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "results": results}, indent=1))
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
